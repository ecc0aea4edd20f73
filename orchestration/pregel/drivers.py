"""The two drivers that fulfil the loop's effects: `drive` with blocking I/O and a thread pool
(`invoke`, `stream`) and `adrive` with asyncio (`ainvoke`, `astream`); and running one task,
with its retries and interrupts, in either world.

Async code under the blocking driver (an `async def` node or router under `invoke`) runs to
completion on a private event loop (`asyncio.run`), on a pool thread when the calling thread
already runs a loop. Under `ainvoke` it is awaited on the caller's loop and sync nodes run in
worker threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace as dataclass_replace
from typing import TYPE_CHECKING, Any

from orchestration.checkpoint.base import BaseCheckpointSaver, CheckpointConfig
from orchestration.config import task_config
from orchestration.context import RunContext, current_run
from orchestration.errors import InvalidUpdateError, ParentCommand
from orchestration.interrupts import GraphInterrupt, TaskScope, current_task
from orchestration.pregel import chat_stream
from orchestration.pregel.effects import Core, Effect, Emit, Execute, Get, Put, PutWrites, Route
from orchestration.pregel.plan import Outcome, Task, normalize_result
from orchestration.types import Command, retry_wait

if TYPE_CHECKING:
    from orchestration.spec import GraphSpec, NodeSpec
    from orchestration.streaming import Sink


# -- running one task ---------------------------------------------------------------------------


def run_task(
    spec: GraphSpec,
    task: Task,
    arg: Any,
    resume: list[Any],
    thread_id: str = "",
    step: int = 0,
    context: RunContext | None = None,
    edits: int = 0,
) -> Outcome:
    node = spec.nodes[task.node]
    scope = TaskScope(task, resume, thread_id, step, context, edits)
    token = current_task.set(scope)
    run_token = current_run.set(context)
    fn = _bound(node, scope) if node.wants_config else node.fn
    attempt = 0
    try:
        while True:
            attempt += 1
            scope.calls = scope.subcalls = scope.task_calls = 0
            try:
                if chat_stream.wanted(context):
                    with chat_stream.node_messages(context, scope, arg) as tap:  # type: ignore[arg-type]
                        result = run_sync(fn, arg) if node.is_async else fn(arg)
                        tap.output(result)
                else:
                    result = run_sync(fn, arg) if node.is_async else fn(arg)
            except ParentCommand as handoff:
                # A subgraph this node ran handed off to this graph: its command is the
                # node's result (LangGraph: the task whose namespace the command names).
                return _finish(spec, task, handoff.command, resume)
            except Exception as error:
                settled = _settle_failure(node, task, error, attempt, resume, scope.memo)
                if isinstance(settled, Outcome):
                    return settled
                time.sleep(settled)
                continue
            return _finish(spec, task, result, resume)
    finally:
        current_run.reset(run_token)
        current_task.reset(token)


async def arun_task(
    spec: GraphSpec,
    task: Task,
    arg: Any,
    resume: list[Any],
    thread_id: str = "",
    step: int = 0,
    context: RunContext | None = None,
    edits: int = 0,
) -> Outcome:
    node = spec.nodes[task.node]
    if not node.is_async:
        return await asyncio.to_thread(
            run_task, spec, task, arg, resume, thread_id, step, context, edits
        )
    scope = TaskScope(task, resume, thread_id, step, context, edits)
    token = current_task.set(scope)
    run_token = current_run.set(context)
    fn = _bound(node, scope)
    attempt = 0
    try:
        while True:
            attempt += 1
            scope.calls = scope.subcalls = scope.task_calls = 0
            try:
                if chat_stream.wanted(context):
                    with chat_stream.node_messages(context, scope, arg) as tap:  # type: ignore[arg-type]
                        result = await fn(arg)
                        tap.output(result)
                else:
                    result = await fn(arg)
            except ParentCommand as handoff:
                return _finish(spec, task, handoff.command, resume)
            except Exception as error:
                settled = _settle_failure(node, task, error, attempt, resume, scope.memo)
                if isinstance(settled, Outcome):
                    return settled
                await asyncio.sleep(settled)
                continue
            return _finish(spec, task, result, resume)
    finally:
        current_run.reset(run_token)
        current_task.reset(token)


def _bound(node: NodeSpec, scope: TaskScope) -> Callable[[Any], Any]:
    """The node's function as a one-argument callable: a node declaring a `config` parameter
    gets the task's config (LangGraph passes it by keyword)."""
    if not node.wants_config:
        return node.fn
    return functools.partial(node.fn, config=task_config(scope))


def _settle_failure(
    node: NodeSpec, task: Task, error: Exception, attempt: int, resume: list[Any],
    memo: list[Any],
) -> Outcome | float:
    """What an attempt that raised leads to, for both drivers: the task's outcome (it waits at
    an interrupt, or it failed for good), or the seconds to wait before the next attempt.
    `memo`: the @task results the node got so far, kept for its next pass."""
    if isinstance(error, GraphInterrupt):
        return Outcome(
            task, interrupt=error.interrupt, interrupt_index=error.index, resume=resume,
            memo=memo,
        )
    if node.retry:
        wait = retry_wait(node.retry, error, attempt)
        if wait is not None:
            return wait
    return Outcome(task, error=error, resume=resume, memo=memo)


def _finish(spec: GraphSpec, task: Task, result: Any, resume: list[Any]) -> Outcome:
    if type(result) is Command and result.graph == Command.PARENT:
        # For the parent graph: the loop raises it out of this graph's run (`_superstep`).
        handoff = ParentCommand(dataclass_replace(result, graph=None), task.node)
        return Outcome(task, error=handoff, resume=resume)
    try:
        update, goto = normalize_result(spec.schema, task.node, result)
    except InvalidUpdateError as error:
        return Outcome(task, error=error, resume=resume)
    # The answers it ran with are kept with its writes: a re-delivered answer is then known.
    return Outcome(task, update=update, goto=goto, resume=resume)


def run_sync(fn: Callable[[Any], Awaitable[Any]], arg: Any) -> Any:
    """Run an async callable to completion from sync code."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(fn, arg))
    # This thread already runs a loop (invoke called from async code): use a pool thread.
    return _executor().submit(asyncio.run, _await(fn, arg)).result()


async def _await(fn: Callable[[Any], Awaitable[Any]], arg: Any) -> Any:
    return await fn(arg)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One process-wide pool: creating a pool per superstep costs more than the step itself."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(
                    max_workers=max(32, (os.cpu_count() or 1) * 4), thread_name_prefix="stepwise"
                )
    return _pool


def check_max_concurrency(limit: Any) -> None:
    """Refuse, before the call runs, a config `max_concurrency` that is not a limit."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(
            "config['max_concurrency'] must be a whole number of at least 1 (or None for no "
            f"limit), got {limit!r}"
        )


def max_concurrency(context: RunContext | None) -> int | None:
    """The config's `max_concurrency` (checked by `check_max_concurrency`): how many tasks
    of a superstep may run at once, as LangGraph reads it; None: all of them."""
    return None if context is None else context.config.get("max_concurrency")


def execute_sync(effect: Execute) -> list[Outcome]:
    work = effect.work
    spec = effect.spec
    first_task, first_arg, first_resume = work[0]
    # The first sync task runs inline on the caller's thread: most supersteps have one task.
    where = (effect.thread_id, effect.step, effect.context, effect.edits)
    if len(work) == 1 and not spec.nodes[first_task.node].is_async:
        return [run_task(spec, first_task, first_arg, first_resume, *where)]
    pool = _executor()
    limit = max_concurrency(effect.context)
    if limit is not None and limit < len(work):
        return _execute_limited(pool, effect, limit)
    inline = not spec.nodes[first_task.node].is_async
    futures = [
        pool.submit(run_task, spec, t, a, r, *where) for t, a, r in work[1 if inline else 0 :]
    ]
    results = [run_task(spec, first_task, first_arg, first_resume, *where)] if inline else []
    results.extend(f.result() for f in futures)
    return results


def _execute_limited(pool: ThreadPoolExecutor, effect: Execute, limit: int) -> list[Outcome]:
    """The step's tasks on the pool, `limit` at a time (a task starts as one finishes), their
    outcomes in task order."""
    where = (effect.thread_id, effect.step, effect.context, effect.edits)
    queued = iter(enumerate(effect.work))
    outcomes: list[Outcome | None] = [None] * len(effect.work)
    running: dict[Future[Outcome], int] = {}

    def start_next() -> None:
        item = next(queued, None)
        if item is not None:
            index, (task, arg, resume) = item
            running[pool.submit(run_task, effect.spec, task, arg, resume, *where)] = index

    for _ in range(limit):
        start_next()
    while running:
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            outcomes[running.pop(future)] = future.result()
            start_next()
    return outcomes  # type: ignore[return-value] - every slot is filled


async def execute_async(effect: Execute) -> list[Outcome]:
    where = (effect.thread_id, effect.step, effect.context, effect.edits)
    limit = max_concurrency(effect.context)
    if limit is None or limit >= len(effect.work):
        return list(await asyncio.gather(
            *(arun_task(effect.spec, t, a, r, *where) for t, a, r in effect.work)
        ))
    gate = asyncio.Semaphore(limit)

    async def gated(task: Task, arg: Any, resume: list[Any]) -> Outcome:
        async with gate:
            return await arun_task(effect.spec, task, arg, resume, *where)

    return list(await asyncio.gather(*(gated(t, a, r) for t, a, r in effect.work)))


def route_sync(effect: Route) -> list[Any]:
    """Each async router's answer, or the exception it raised (the loop names the node)."""
    answers: list[Any] = []
    for branch, state in effect.calls:
        try:
            answers.append(run_sync(branch.router, state))
        except Exception as error:
            answers.append(error)
    return answers


async def route_async(effect: Route) -> list[Any]:
    async def call(router: Callable[[Any], Any], state: Any) -> Any:
        try:
            result = router(state)
            return await result if inspect.isawaitable(result) else result
        except Exception as error:
            return error

    return list(await asyncio.gather(*(call(b.router, s) for b, s in effect.calls)))


# -- drivers -----------------------------------------------------------------------------------


def drive(
    core: Core, saver: BaseCheckpointSaver | None, sink: Sink | None = None
) -> Generator[tuple[str, str, Any], None, Any]:
    """Fulfil the core's effects with blocking I/O; yields stream chunks as (namespace, mode,
    chunk), returns its result. With a `sink`, see `_drive_in_background`."""
    if sink is not None:
        return (yield from _drive_in_background(core, saver, sink))
    send: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = core.throw(error) if error is not None else core.send(send)
            except StopIteration as stop:
                _flush(saver)
                return stop.value
            send, error = None, None
            if type(effect) is Emit:
                yield "", effect.mode, effect.chunk
                continue
            try:
                send = _fulfil(effect, saver)
            except Exception as caught:
                error = caught
    except BaseException as failed:
        _flush_after(saver, failed)
        raise


_DONE: Any = object()


class _Stopped(Exception):  # noqa: N818 - a signal: the stream's consumer went away
    pass


def _drive_in_background(
    core: Core, saver: BaseCheckpointSaver | None, sink: Sink
) -> Generator[tuple[str, str, Any], None, Any]:
    """The run goes on in one pool thread, putting every chunk (its own and what nodes write
    while they run) on the sink's queue, in order; this generator yields them as they arrive.
    One thread for the whole call, not a hand-off per superstep: a wake-up costs far more
    than a superstep on a loaded machine. If the consumer stops iterating, the run stops
    before its next effect (the superstep in progress finishes)."""
    stop = threading.Event()

    def produce() -> None:
        try:
            result = run_blocking(core, saver, sink, stop)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer's thread
            sink.emit_done(_DONE, ("error", error))
        else:
            sink.emit_done(_DONE, ("ok", result))

    # the caller's context variables reach its nodes as they would if run inline
    future = _executor().submit(contextvars.copy_context().run, produce)
    try:
        while True:
            for item in (sink.get(), *sink.drain()):
                if item[1] is _DONE:
                    kind, value = item[2]
                    if kind == "error":
                        raise value
                    return value
                yield item
    finally:
        stop.set()
        future.result()


def run_blocking(
    core: Core,
    saver: BaseCheckpointSaver | None,
    sink: Sink | None = None,
    stop: threading.Event | None = None,
) -> Any:
    """`drive` for `invoke`, which streams nothing: a plain loop, not a generator to step.
    With a `sink` (a stream run on a pool thread, `_drive_in_background`) the loop's chunks go
    to it, and `stop` ends the run before its next effect."""
    send: Any = None
    error: BaseException | None = None
    try:
        while True:
            if stop is not None and stop.is_set():
                core.close()
                raise _Stopped
            try:
                effect = core.throw(error) if error is not None else core.send(send)
            except StopIteration as done:
                _flush(saver)
                return done.value
            send, error = None, None
            if sink is not None and type(effect) is Emit:
                sink.emit("", effect.mode, effect.chunk)
                continue
            try:
                send = _fulfil(effect, saver)
            except Exception as caught:
                error = caught
    except BaseException as failed:
        _flush_after(saver, failed)
        raise


# A saver may write behind (its put returns before the commit): the run's writes are
# committed, and a failed one raised, before the run returns; before a node with side effects
# acts on the world they are also made durable (`flush_durable`): it must never act for a
# superstep whose write was refused, or that a crash of the database could still lose.


def _flush(saver: BaseCheckpointSaver | None) -> None:
    if saver is not None:
        saver.flush()


def _flush_after(saver: BaseCheckpointSaver | None, failed: BaseException) -> None:
    """Flush as the run fails: the error the run failed with stays the one raised."""
    if saver is None:
        return
    try:
        saver.flush()
    except Exception as also:
        failed.add_note(f"and the last checkpoint write failed too: {also!r}")


def _has_side_effects(effect: Execute) -> bool:
    nodes = effect.spec.nodes
    return any(nodes[task.node].side_effects for task, _, _ in effect.work)


def _fulfil(effect: Effect, saver: BaseCheckpointSaver | None) -> Any:
    """Answer one effect with blocking I/O (an `Emit` is dropped: nobody is listening)."""
    # Dispatch on the exact type with `is`: this runs once per effect, many per step.
    kind = type(effect)
    if kind is Execute:
        if saver is not None and _has_side_effects(effect):  # type: ignore[arg-type]
            saver.flush_durable()
        return execute_sync(effect)  # type: ignore[arg-type]
    if kind is Route:
        return route_sync(effect)  # type: ignore[arg-type]
    if kind is Emit:
        return None
    if saver is None:
        return _no_saver(effect)
    if kind is Put:
        return saver.put(effect.config, effect.checkpoint, effect.metadata)  # type: ignore[union-attr]
    if kind is Get:
        return saver.get_tuple(effect.config)  # type: ignore[union-attr]
    if kind is PutWrites:
        if effect.deferrable:  # type: ignore[union-attr]
            saver.put_writes_deferred(effect.config, effect.writes, effect.task_id)  # type: ignore[union-attr]
        else:
            saver.put_writes(effect.config, effect.writes, effect.task_id)  # type: ignore[union-attr]
    return None


async def adrive(
    core: Core, saver: BaseCheckpointSaver | None, result: list[Any], sink: Sink | None = None
) -> AsyncIterator[tuple[str, str, Any]]:
    """The asyncio twin of `drive`; the core's return value is appended to `result`."""
    wake = sink.bind_loop() if sink is not None else None
    send: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = core.throw(error) if error is not None else core.send(send)
            except StopIteration as stop:
                if saver is not None:
                    await saver.aflush()
                result.append(stop.value)
                return
            send, error = None, None
            try:
                if isinstance(effect, Execute):
                    if saver is not None and _has_side_effects(effect):
                        await saver.aflush_durable()
                    if sink is None or wake is None:
                        send = await execute_async(effect)
                    else:
                        running = asyncio.ensure_future(execute_async(effect))
                        while True:
                            for item in sink.drain():
                                yield item
                            if running.done():
                                break
                            waiter = asyncio.ensure_future(wake.wait())
                            await asyncio.wait(
                                (running, waiter), return_when=asyncio.FIRST_COMPLETED
                            )
                            waiter.cancel()
                            wake.clear()
                        for item in sink.drain():
                            yield item
                        send = running.result()
                elif isinstance(effect, Emit):
                    yield "", effect.mode, effect.chunk
                elif isinstance(effect, Route):
                    send = await route_async(effect)
                elif saver is None:
                    send = _no_saver(effect)
                elif isinstance(effect, Get):
                    send = await saver.aget_tuple(effect.config)
                elif isinstance(effect, Put):
                    send = await saver.aput(effect.config, effect.checkpoint, effect.metadata)
                elif isinstance(effect, PutWrites):
                    if effect.deferrable:
                        await saver.aput_writes_deferred(
                            effect.config, effect.writes, effect.task_id
                        )
                    else:
                        await saver.aput_writes(effect.config, effect.writes, effect.task_id)
            except Exception as caught:
                error = caught
    except Exception as failed:
        if saver is not None:
            try:
                await saver.aflush()
            except Exception as also:
                failed.add_note(f"and the last checkpoint write failed too: {also!r}")
        raise


def _no_saver(effect: Effect) -> Any:
    """Without a saver a run still works; it just cannot be resumed or inspected."""
    if isinstance(effect, Put):
        return CheckpointConfig(effect.config.thread_id, effect.checkpoint.id)
    return None
