"""LangGraph's functional API: `@entrypoint` turns a function into a resumable workflow and
`@task` into a step whose result is kept, so plain Python control flow gets checkpoints,
interrupts and resumes.

An entrypoint is a one-node graph over a private state (the call's input, its output, and
what it saves for the next call on the thread), run by the same engine as a `StateGraph`;
`Entrypoint` translates between that state and what LangGraph shows (the output as the
state's values, `{task: result}` updates). A `@task` call returns a future at once; its
result is recorded with the entrypoint's task (`TaskScope.memo`, by call order) when the
entrypoint pauses at `interrupt()` or fails, so the re-run that follows takes the recorded
results instead of calling the tasks again (LangGraph keeps them as the task's writes).
A process that dies while the entrypoint runs loses that pass's results: its tasks run
again on resume, as a node's work does.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from orchestration.compiled import CompiledGraph, StateHistory
from orchestration.context import current_run, get_runtime, get_store, get_stream_writer
from orchestration.graph import StateGraph
from orchestration.interrupts import current_task
from orchestration.types import START, Command, RetryPolicy, StateSnapshot, retry_wait

__all__ = ["entrypoint", "task"]

INTERRUPT = "__interrupt__"


class _Run(TypedDict, total=False):
    """An entrypoint's state: the call's input, the function's output, and what it saves for
    the next call on the thread (`previous`)."""

    input: Any
    output: Any
    previous: Any


# -- @task ---------------------------------------------------------------------------------


class TaskFuture[T]:
    """What calling a task returns: `.result()` waits for it (sync), `await` it (async)."""

    __slots__ = ("_future",)

    def __init__(self, future: Future[T] | asyncio.Future[T]) -> None:
        self._future = future

    def result(self, timeout: float | None = None) -> T:
        future = self._future
        if isinstance(future, asyncio.Future):
            if not future.done():
                raise RuntimeError(
                    "this task runs on the event loop: `await` it instead of calling .result()"
                )
            return future.result()
        return future.result(timeout)

    def done(self) -> bool:
        return self._future.done()

    def __await__(self) -> Any:
        future = self._future
        if isinstance(future, asyncio.Future):
            return future.__await__()
        return asyncio.wrap_future(future).__await__()


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """Tasks' own pool: an entrypoint waiting on its tasks must not hold the slots of the
    pool that runs nodes (`pregel/drivers.py`), or enough such waits would starve it."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(
                    max_workers=max(32, (os.cpu_count() or 1) * 4),
                    thread_name_prefix="stepwise-task",
                )
    return _pool


class Task[T]:
    """A function decorated with `@task`."""

    def __init__(
        self, fn: Callable[..., Any], name: str | None, retry: tuple[RetryPolicy, ...]
    ) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "task")
        self.retry = retry
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __call__(self, *args: Any, **kwargs: Any) -> TaskFuture[T]:
        scope = current_task.get()
        if scope is None:
            raise RuntimeError(
                f"task {self.name!r} was called outside an entrypoint's run: call it from "
                "a function decorated with @entrypoint (or from another task), then invoke it"
            )
        index = scope.task_calls
        scope.task_calls += 1
        if index in scope.recorded:  # recorded by an earlier pass: not called again
            return TaskFuture(_finished(scope.recorded[index]))
        if self.is_async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    f"task {self.name!r} is async: call it from an async entrypoint (run with "
                    "ainvoke/astream), or make the task a plain function"
                ) from None
            return TaskFuture(asyncio.ensure_future(self._arun(scope, index, args, kwargs)))
        context = contextvars.copy_context()
        return TaskFuture(_executor().submit(context.run, self._run, scope, index, args, kwargs))

    def _run(self, scope: Any, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                value = self.fn(*args, **kwargs)
            except Exception as error:
                time.sleep(self._wait_after(error, attempt))
                continue
            return self._done(scope, index, value)

    async def _arun(
        self, scope: Any, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                value = await self.fn(*args, **kwargs)
            except Exception as error:
                await asyncio.sleep(self._wait_after(error, attempt))
                continue
            return self._done(scope, index, value)

    def _wait_after(self, error: Exception, attempt: int) -> float:
        """Seconds before the next attempt, per the task's retry policies; re-raises `error`
        (in its `except` block) when none retries it."""
        wait = retry_wait(self.retry, error, attempt) if self.retry else None
        if wait is None:
            raise error
        return wait

    def _done(self, scope: Any, index: int, value: Any) -> Any:
        # one append and one store: safe beside other task threads; `recorded` serves a
        # retry of the entrypoint in this same pass
        scope.memo.append([index, value])
        scope.recorded[index] = value
        run = current_run.get()
        if run is not None and run.sink is not None:
            run.sink.emit(run.checkpoint_ns, "updates", {self.name: value})
        return value


def _finished(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def task(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
    retry: RetryPolicy | Sequence[RetryPolicy] | None = None,
) -> Any:
    """`@task` or `@task(name=..., retry_policy=...)`: calling the function inside an
    entrypoint runs it (sync functions on a pool thread, async ones on the loop) and returns
    a future; its result is kept across the entrypoint's pauses and failures."""
    given = retry_policy if retry_policy is not None else retry
    policies: tuple[RetryPolicy, ...] = (
        () if given is None else (given,) if isinstance(given, RetryPolicy) else tuple(given)
    )

    def wrap(function: Callable[..., Any]) -> Task[Any]:
        return Task(function, name, policies)

    return wrap(fn) if fn is not None else wrap


# -- @entrypoint ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Final[T]:
    """`return entrypoint.final(value=..., save=...)`: `value` goes to the caller, `save` is
    what the thread's next call gets as `previous`."""

    value: Any
    save: Any


class entrypoint:  # noqa: N801 - LangGraph's name, used as a decorator
    """`@entrypoint(checkpointer=...)`: the decorated function (one input argument, and
    optionally `previous`, `config`, `store`, `writer`, `runtime`) becomes a workflow with
    `invoke`, `stream`, their async twins and the thread's state and history."""

    final = _Final

    def __init__(
        self,
        checkpointer: Any = None,
        store: Any = None,
        context_schema: Any = None,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
    ) -> None:
        self.checkpointer = checkpointer
        self.store = store
        self.context_schema = context_schema
        self.retry_policy = retry_policy

    def __call__(self, fn: Callable[..., Any]) -> Entrypoint:
        name = getattr(fn, "__name__", "entrypoint")
        builder = StateGraph(_Run, context_schema=self.context_schema)
        builder.add_node(name, _node_for(fn), retry_policy=self.retry_policy)
        builder.add_edge(START, name)
        graph = builder.compile(checkpointer=self.checkpointer, store=self.store)
        return Entrypoint(graph, name, fn)


def _node_for(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The entrypoint's node: calls `fn` with the input and what it declares."""
    params = inspect.signature(fn).parameters
    extras: dict[str, Callable[[_Run], Any]] = {}
    if "previous" in params:
        extras["previous"] = lambda state: state.get("previous")
    if "config" in params:
        from orchestration.config import get_config

        extras["config"] = lambda state: get_config()
    if "store" in params:
        extras["store"] = lambda state: get_store()
    if "writer" in params:
        extras["writer"] = lambda state: get_stream_writer()
    if "runtime" in params:
        extras["runtime"] = lambda state: replace(get_runtime(), previous=state.get("previous"))

    def call(state: _Run) -> Any:
        return fn(state.get("input"), **{k: get(state) for k, get in extras.items()})

    if inspect.iscoroutinefunction(fn):

        async def anode(state: _Run) -> dict[str, Any]:
            return _saved(await call(state))

        return anode

    def node(state: _Run) -> dict[str, Any]:
        return _saved(call(state))

    return node


def _saved(result: Any) -> dict[str, Any]:
    if isinstance(result, _Final):
        return {"output": result.value, "previous": result.save}
    return {"output": result, "previous": result}


class Entrypoint:
    """A workflow made with `@entrypoint`: LangGraph's Pregel surface over a one-node graph."""

    def __init__(self, graph: CompiledGraph, name: str, fn: Callable[..., Any]) -> None:
        self.graph = graph
        self.node = name
        self.name = "LangGraph"  # as LangGraph names an entrypoint's graph
        self.checkpointer = graph.saver
        self.store = graph.store
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    # -- running

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        return self._result(self.graph.invoke(_input(input), config, **kwargs))

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        return self._result(await self.graph.ainvoke(_input(input), config, **kwargs))

    def stream(
        self, input: Any, config: Any = None, *, stream_mode: Any = "updates", **kwargs: Any
    ) -> Iterator[Any]:
        modes, single, inner = _modes(stream_mode)
        chunks = self.graph.stream(_input(input), config, stream_mode=inner, **kwargs)
        translate = _Translator(self.node, modes, single, starts_new=_is_new(input),
                                subgraphs=bool(kwargs.get("subgraphs")))
        for item in chunks:
            yield from translate(item)

    async def astream(
        self, input: Any, config: Any = None, *, stream_mode: Any = "updates", **kwargs: Any
    ) -> AsyncIterator[Any]:
        modes, single, inner = _modes(stream_mode)
        chunks = self.graph.astream(_input(input), config, stream_mode=inner, **kwargs)
        translate = _Translator(self.node, modes, single, starts_new=_is_new(input),
                                subgraphs=bool(kwargs.get("subgraphs")))
        async for item in chunks:
            for shown in translate(item):
                yield shown

    def _result(self, state: Mapping[str, Any]) -> Any:
        if INTERRUPT in state:
            return {INTERRUPT: state[INTERRUPT]}
        return state.get("output")

    # -- the thread's state

    def get_state(self, config: Any, *, subgraphs: bool = False) -> StateSnapshot:
        return _shown(self.graph.get_state(config, subgraphs=subgraphs))

    async def aget_state(self, config: Any, *, subgraphs: bool = False) -> StateSnapshot:
        return _shown(await self.graph.aget_state(config, subgraphs=subgraphs))

    def get_state_history(self, config: Any, **kwargs: Any) -> StateHistory:
        """Newest first; `next()` takes from it, as from LangGraph's generator."""
        return StateHistory(_shown(s) for s in self.graph.get_state_history(config, **kwargs))

    async def aget_state_history(self, config: Any, **kwargs: Any) -> list[StateSnapshot]:
        return [_shown(s) for s in await _listed(self.graph.aget_state_history(config, **kwargs))]

    def get_graph(self, config: Any = None, *, xray: int | bool = False) -> Any:
        return self.graph.get_graph(config, xray=xray)


async def _listed(history: Any) -> list[Any]:
    if inspect.isawaitable(history):
        return list(await history)
    return [s async for s in history]


def _input(value: Any) -> Any:
    return value if value is None or isinstance(value, Command) else {"input": value}


def _is_new(value: Any) -> bool:
    return value is not None and not isinstance(value, Command)


def _shown(snapshot: StateSnapshot) -> StateSnapshot:
    """A snapshot as LangGraph shows an entrypoint's: its values are the output so far, and
    the entrypoint's write in the metadata is its output."""
    values = snapshot.values or {}
    metadata = snapshot.metadata
    if metadata is not None and metadata.writes:
        writes = {
            node: written.get("output") if isinstance(written, Mapping) else written
            for node, written in metadata.writes.items()
        }
        metadata = replace(metadata, writes=writes)
    output = values.get("output") if isinstance(values, Mapping) else None
    return replace(snapshot, values=output, metadata=metadata)


def _modes(stream_mode: Any) -> tuple[frozenset[str], bool, list[str]]:
    """(modes asked, whether one mode was given bare, the modes to ask the graph for): the
    graph always streams pairs, `updates` for the entrypoint's own result and `custom` so
    its run has a sink that tasks' updates reach."""
    single = isinstance(stream_mode, str)
    modes = frozenset([stream_mode] if single else stream_mode)
    return modes, single, sorted(modes | {"custom"})


class _Translator:
    """The graph's (mode, chunk) pairs, or (namespace, mode, chunk) with `subgraphs=True`, ->
    what LangGraph streams for an entrypoint. A graph run inside it streams as it is."""

    def __init__(
        self, node: str, modes: frozenset[str], single: bool, starts_new: bool, subgraphs: bool
    ) -> None:
        self.node, self.modes, self.single, self.subgraphs = node, modes, single, subgraphs
        # New input does not write the output: LangGraph streams no values for it.
        self.skip_values = starts_new

    def __call__(self, item: tuple[Any, ...]) -> Iterator[Any]:
        ns, mode, chunk = item if self.subgraphs else ((), *item)
        if mode not in self.modes:
            return
        if ns:
            pass  # a subgraph's chunk: its own state, shown as it is
        elif mode == "values":
            if self.skip_values:
                self.skip_values = False
                return
            if isinstance(chunk, Mapping) and INTERRUPT in chunk:
                chunk = {INTERRUPT: tuple(chunk[INTERRUPT])}
            else:
                chunk = chunk.get("output") if isinstance(chunk, Mapping) else chunk
        elif mode == "updates" and isinstance(chunk, Mapping) and self.node in chunk:
            written = chunk[self.node]
            chunk = {self.node: written.get("output") if isinstance(written, Mapping) else None}
        if self.subgraphs:
            yield (ns, chunk) if self.single else (ns, mode, chunk)
        else:
            yield chunk if self.single else (mode, chunk)

