"""What a running node can reach besides its state: the run it belongs to (its saver, thread
and checkpoint namespace, for subgraphs), the stream writer and the store.

A context variable rather than arguments: node functions keep LangGraph's signatures, and a
subgraph run inside a node (or a `child.invoke()` a node makes itself) finds its parent run
without being told. The drivers set it around each task (`pregel/drivers.run_task`); tasks run
on pool threads, so it is set in the thread that runs the node, never inherited by accident.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestration.checkpoint.base import BaseCheckpointSaver
    from orchestration.store.base import BaseStore
    from orchestration.streaming import Sink


@dataclass(frozen=True, slots=True)
class RunContext:
    """One `invoke`/`stream` call as its nodes see it."""

    saver: BaseCheckpointSaver | None
    thread_id: str
    checkpoint_ns: str = ""
    store: BaseStore | None = None
    # where stream chunks go while the run streams (None: nobody listens)
    sink: Sink | None = None
    # the run's config as LangGraph shapes it: what a node's `config` parameter and
    # `get_config()` receive (`config.run_config`)
    config: dict[str, Any] = field(default_factory=dict)
    # whether the run that started it all keeps checkpoints: without a saver an `interrupt()`
    # could never be answered. A subgraph inherits it (its private memory saver doesn't count).
    durable: bool = True
    # what the caller gave as `invoke(..., context=...)` (LangGraph's run-scoped context):
    # `Runtime.context` in a node that asks for it; a subgraph inherits it
    context: Any = None


current_run: ContextVar[RunContext | None] = ContextVar("stepwise_run", default=None)


def _drop(chunk: Any) -> None:
    return None


def get_stream_writer() -> Callable[[Any], None]:
    """Inside a node: a callable that emits each chunk it is given to `stream_mode="custom"`
    at once, while the node still runs. Outside a streaming run it does nothing."""
    run = current_run.get()
    if run is None or run.sink is None or not run.sink.wants_custom:
        return _drop
    sink, ns = run.sink, run.checkpoint_ns

    def write(chunk: Any) -> None:
        sink.emit(ns, "custom", chunk)

    return write


@dataclass(frozen=True, slots=True)
class Runtime[C]:
    """What LangGraph 1.x hands a node that declares a `runtime` parameter (`runtime:
    Runtime[Ctx]`), and `get_runtime()` returns inside one: the `context` the caller gave
    with `invoke(..., context=Ctx(...))` (None if none), the graph's store, and the stream
    writer of `get_stream_writer()`. The context is the caller's own object, handed over as
    it is and never checkpointed: give it again when you resume."""

    context: C | None = None
    store: BaseStore | None = None
    stream_writer: Callable[[Any], None] = _drop
    previous: Any = None


def coerce_context(schema: Any, context: Any) -> Any:
    """`invoke(..., context={...})` on a graph with a dataclass or pydantic `context_schema`
    gives its nodes a `schema(**context)`, as LangGraph does; anything else as given."""
    if not isinstance(context, dict) or not isinstance(schema, type):
        return context
    if dataclasses.is_dataclass(schema) or hasattr(schema, "model_validate"):
        try:
            return schema(**context)
        except TypeError as error:
            raise TypeError(
                f"context={context!r:.100} does not fit context_schema {schema.__name__}: "
                f"{error}; give the fields {schema.__name__} declares"
            ) from error
    return context


# The type of `get_stream_writer()`'s callable, and of a node's `writer` parameter.
StreamWriter = Callable[[Any], None]


def with_writer_param(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` itself, or, when it declares a keyword parameter `writer`, a node function that
    passes it `get_stream_writer()` (as LangGraph does for `writer: StreamWriter`)."""
    return _with_param(fn, "writer", get_stream_writer)


def get_runtime(context_schema: Any = None) -> Runtime[Any]:
    """Inside a node: the run's `Runtime` (LangGraph's `get_runtime`). `context_schema` is
    only a hint for type checkers, as there."""
    run = current_run.get()
    if run is None:
        raise RuntimeError("get_runtime() can only be called inside a node while a graph runs it")
    return Runtime(run.context, run.store, get_stream_writer())


def with_runtime_param(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` itself, or, when it declares a keyword parameter `runtime`, a node function that
    passes it the run's `Runtime` (as LangGraph 1.x does)."""
    return _with_param(fn, "runtime", get_runtime)


def get_store() -> BaseStore:
    """Inside a node: the store attached with `compile(store=...)` or `.with_store(store)`."""
    run = current_run.get()
    if run is None:
        raise RuntimeError("get_store() can only be called inside a node while a graph runs it")
    if run.store is None:
        raise RuntimeError(
            "this graph has no store: attach one with compile(store=InMemoryStore()) or "
            "graph.with_store(store) (orchestration.store)"
        )
    return run.store


def with_store_param(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` itself, or, when it declares a keyword parameter `store`, a node function that
    passes it the run's store (None when the graph has none), as LangGraph does."""
    return _with_param(fn, "store", _store_now)


def _store_now() -> BaseStore | None:
    run = current_run.get()
    return run.store if run is not None else None


def _with_param(fn: Callable[..., Any], name: str, now: Callable[[], Any]) -> Callable[..., Any]:
    """`fn`, or, if it declares a keyword parameter `name`, a wrapper passing it `now()` at
    each call (in the task's own context). Wrappers nest: `store`, `runtime` and `config` may
    all be declared."""
    try:
        param = inspect.signature(fn).parameters.get(name)
    except (TypeError, ValueError):
        return fn
    if param is None or param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
        return fn

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def anode(state: Any, **kwargs: Any) -> Any:  # kwargs: the other injections
            return await fn(state, **{name: now()}, **kwargs)

        return anode

    @functools.wraps(fn)
    def node(state: Any, **kwargs: Any) -> Any:
        return fn(state, **{name: now()}, **kwargs)

    return node
