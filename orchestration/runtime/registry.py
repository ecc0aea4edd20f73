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
from orchestration.runtime.errors import GraphImportError, GraphRegistryError, UnknownGraph

__all__ = [
    "GraphImportError", "GraphRegistryError", "UnknownGraph", "get_graph", "graph_names",
    "load_graph",
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
