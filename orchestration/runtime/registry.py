"""The graphs this installation runs, by name: `settings.STEPWISE_GRAPHS`.

A run stores only the graph's name, so any worker process can resume any thread. Each entry
is "module:attribute" naming a compiled graph, or a factory (no arguments) returning one.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from django.conf import settings

# re-exported: these were defined here before the runtime had one error tree
from orchestration.func import Entrypoint
from orchestration.runtime.errors import GraphImportError, GraphRegistryError, UnknownGraph

__all__ = [
    "GraphImportError", "GraphRegistryError", "StallPolicy", "UnknownGraph", "get_graph",
    "graph_names", "load_graph", "stall_policy",
]


_cache: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def graph_names() -> list[str]:
    return sorted(settings.STEPWISE_GRAPHS)


def get_graph(graph_name: str) -> Any:
    """The compiled graph registered as `graph_name` (imported once per process)."""
    graphs: dict[str, str] = settings.STEPWISE_GRAPHS
    target = graphs.get(graph_name)
    if target is None:
        raise UnknownGraph(graph_name, known=graphs)
    key = (graph_name, target)
    with _lock:
        if key not in _cache:
            _cache[key] = load_graph(graph_name, target)
        return _cache[key]


def load_graph(graph_name: str, target: str) -> Any:
    """Import `target` ("module:attribute") and return the compiled graph it names."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise GraphImportError(
            f"STEPWISE_GRAPHS[{graph_name!r}] = {target!r} is not of the form 'module:attribute'",
            graph_name=graph_name, target=target,
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise GraphImportError(
            f"STEPWISE_GRAPHS[{graph_name!r}]: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}",
            graph_name=graph_name, target=target,
        ) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError as exc:
        raise GraphImportError(
            f"STEPWISE_GRAPHS[{graph_name!r}]: module {module_name!r} has no attribute {attr!r}",
            graph_name=graph_name, target=target,
        ) from exc
    if not _is_compiled(obj) and callable(obj):
        obj = obj()
    if isinstance(obj, Entrypoint):
        raise GraphImportError(
            f"STEPWISE_GRAPHS[{graph_name!r}] = {target!r} is an @entrypoint workflow (the "
            "functional API), which runs with its own invoke()/stream(); the app runs graphs "
            "built with StateGraph, whose state its reviewers see and fork: register one",
            graph_name=graph_name, target=target,
        )
    if not _is_compiled(obj):
        raise GraphImportError(
            f"STEPWISE_GRAPHS[{graph_name!r}] = {target!r} is a {type(obj).__name__}, not a "
            "compiled graph: point it at StateGraph(...).compile() or a factory returning one",
            graph_name=graph_name, target=target,
        )
    return obj


def _is_compiled(obj: Any) -> bool:
    # A compiled graph is what can be bound to a saver and invoked; a StateGraph builder is
    # callable-free of both, and a factory function has neither.
    return hasattr(obj, "with_checkpoint_saver") and hasattr(obj, "invoke")


# -- what the sweeper may do on its own when a run of the graph stalls ---------------------


class StallPolicy:
    """Automatic resumes of a stalled run: attempt n (1-based) waits
    `backoff_seconds * factor ** (n - 1)` after the stall (or the previous attempt); after
    `max_attempts` the run fails as "needs ops". `max_attempts = 0` opts the graph out: its
    stalled runs wait for a person, as with `resume_stalled --mark-only`."""

    __slots__ = ("backoff_seconds", "factor", "max_attempts", "max_delay_seconds")

    def __init__(self, max_attempts: int = 5, backoff_seconds: float = 5.0, factor: float = 2.0,
                 max_delay_seconds: float = 600.0) -> None:
        if max_attempts < 0 or backoff_seconds < 0 or factor < 1 or max_delay_seconds < 0:
            raise GraphRegistryError(
                "a stall policy needs max_attempts >= 0, backoff_seconds >= 0, factor >= 1 "
                f"and max_delay_seconds >= 0; got {max_attempts=}, {backoff_seconds=}, "
                f"{factor=}, {max_delay_seconds=}"
            )
        self.max_attempts = int(max_attempts)
        self.backoff_seconds = float(backoff_seconds)
        self.factor = float(factor)
        self.max_delay_seconds = float(max_delay_seconds)

    @property
    def enabled(self) -> bool:
        return self.max_attempts > 0

    def delay(self, attempt: int) -> float:
        """Seconds before automatic attempt `attempt` (1-based)."""
        return min(self.backoff_seconds * self.factor ** (attempt - 1), self.max_delay_seconds)

    def __repr__(self) -> str:
        return (f"StallPolicy(max_attempts={self.max_attempts}, backoff_seconds="
                f"{self.backoff_seconds}, factor={self.factor})")


def stall_policy(graph_name: str) -> StallPolicy:
    """`settings.STEPWISE_STALL_POLICY[graph_name]`, else its "default" entry. An entry is a
    dict of `StallPolicy` arguments, or None/False to opt the graph out."""
    policies: dict[str, Any] = getattr(settings, "STEPWISE_STALL_POLICY", {}) or {}
    entry = policies.get(graph_name, policies.get("default", {}))
    if entry is None or entry is False:
        return StallPolicy(max_attempts=0)
    if not isinstance(entry, dict):
        raise GraphRegistryError(
            f"STEPWISE_STALL_POLICY[{graph_name!r}] is a {type(entry).__name__}: give a dict "
            "such as {'max_attempts': 5, 'backoff_seconds': 5, 'factor': 2}, or None to opt out"
        )
    try:
        return StallPolicy(**entry)
    except TypeError as exc:
        raise GraphRegistryError(
            f"STEPWISE_STALL_POLICY[{graph_name!r}]: {exc}; the keys are max_attempts, "
            "backoff_seconds, factor and max_delay_seconds"
        ) from exc
