"""The graphs this installation runs, by name: `settings.STEPWISE_GRAPHS`.

A run stores only the graph's name, so any worker process can resume any thread. Each entry
is "module:attribute" naming a compiled graph, or a factory (no arguments) returning one.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from django.conf import settings


class GraphRegistryError(Exception):
    """A graph name or its STEPWISE_GRAPHS entry cannot be turned into a compiled graph."""


class UnknownGraph(GraphRegistryError, LookupError):
    pass


class GraphImportError(GraphRegistryError, ImportError):
    pass


_cache: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def graph_names() -> list[str]:
    return sorted(settings.STEPWISE_GRAPHS)


def get_graph(graph_name: str) -> Any:
    """The compiled graph registered as `graph_name` (imported once per process)."""
    graphs: dict[str, str] = settings.STEPWISE_GRAPHS
    target = graphs.get(graph_name)
    if target is None:
        known = ", ".join(sorted(graphs)) or "none"
        raise UnknownGraph(
            f"no graph named {graph_name!r} in settings.STEPWISE_GRAPHS (known: {known}); "
            "add it as name -> 'module:attribute'"
        )
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
            f"STEPWISE_GRAPHS[{graph_name!r}] = {target!r} is not of the form 'module:attribute'"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise GraphImportError(
            f"STEPWISE_GRAPHS[{graph_name!r}]: importing {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError as exc:
        raise GraphImportError(
            f"STEPWISE_GRAPHS[{graph_name!r}]: module {module_name!r} has no attribute {attr!r}"
        ) from exc
    if not _is_compiled(obj) and callable(obj):
        obj = obj()
    if not _is_compiled(obj):
        raise GraphImportError(
            f"STEPWISE_GRAPHS[{graph_name!r}] = {target!r} is a {type(obj).__name__}, not a "
            "compiled graph: point it at StateGraph(...).compile() or a factory returning one"
        )
    return obj


def _is_compiled(obj: Any) -> bool:
    # A compiled graph is what can be bound to a saver and invoked; a StateGraph builder is
    # callable-free of both, and a factory function has neither.
    return hasattr(obj, "with_checkpoint_saver") and hasattr(obj, "invoke")


def clear_cache() -> None:
    with _lock:
        _cache.clear()
