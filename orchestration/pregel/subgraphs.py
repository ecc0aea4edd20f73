"""Subgraphs: a compiled graph run inside a node of another graph, as `add_node(name, child)`
or by a node that calls `child.invoke(...)` / `await child.ainvoke(...)` itself.

The child checkpoints in its parent's thread and saver, under `checkpoint_ns` = the node's
path (`"outer"`, nested `"outer|inner"`). Each run of the parent's task starts a fresh chain
in that namespace, marked in `metadata.extra` with the task that runs it, so a task that
runs again (resumed, or retried after a sibling failed) finds its own chain and continues it:
supersteps the child finished are never run again.

An interrupt inside the child is never swallowed: it becomes an interrupt of the parent's
task (same value, `node` = the path, e.g. `"outer|review"`), so the whole run pauses. The
parent's answers for that task are, in order, the answers to the child's interrupts; the
child's own chain records how many it has received (its `__resume__` writes), so an answer is
delivered exactly once even if the process died between storing it and delivering it.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orchestration.checkpoint.base import CheckpointConfig, CheckpointTuple
from orchestration.checkpoint.namespaces import SEPARATOR, child_ns
from orchestration.config import DEFAULT_RECURSION_LIMIT
from orchestration.context import RunContext, current_run
from orchestration.errors import OrchestrationError
from orchestration.interrupts import GraphInterrupt, TaskScope, current_task, interrupt_id
from orchestration.pregel.durability import ExitSaver
from orchestration.pregel.effects import Core, Get, RunSettings
from orchestration.pregel.loop import run_core
from orchestration.pregel.plan import NO_ARG, RESUME, Task, head_of, pending_interrupts
from orchestration.types import Command, Interrupt

if TYPE_CHECKING:
    from orchestration.checkpoint.base import BaseCheckpointSaver
    from orchestration.compiled import CompiledGraph

# metadata.extra keys of a child checkpoint: the parent task (and which of its subgraph calls)
# its chain serves, and the parent checkpoint that task ran from (tools fold the child's
# checkpoints under it)
PARENT_KEY = "stepwise_parent_task"
PARENT_CHECKPOINT = "stepwise_parent_checkpoint"
# The modes a subgraph streams itself with `subgraphs=True`, under its namespace (the
# `custom` and `messages` chunks its nodes write reach the sink directly).
_CHILD_MODES = frozenset(("updates", "values", "tasks", "checkpoints", "debug"))


def values_of(state: Any) -> dict[str, Any]:
    """A state as it reaches a node (dict, dataclass or pydantic instance) as field values."""
    if isinstance(state, Mapping):
        return dict(state)
    fields = getattr(type(state), "__dataclass_fields__", None) or getattr(
        type(state), "model_fields", None
    )
    if fields is None:
        raise TypeError(f"cannot read the fields of state {state!r:.80}")
    return {name: getattr(state, name) for name in fields}


class SubgraphNode:
    """The callable `add_node(name, compiled_graph)` stores: it gives the child the parent's
    values of the fields the child declares and returns the child's final values of the
    fields both declare (applied through the parent's reducers)."""

    def __init__(self, graph: CompiledGraph, name: str, parent_fields: frozenset[str]) -> None:
        self.graph = graph
        self.name = name
        self.__name__ = name
        child_fields = graph.spec.output_fields  # an output schema's, else all the child's
        # A child with an input_schema gets those fields only (LangGraph passes the parent's
        # state and keeps the child's input keys; invoke() refuses the others, see entry).
        self._inputs = graph.spec.input_fields
        self._outputs = frozenset(f for f in child_fields if f in parent_fields)

    def __call__(self, state: Any) -> dict[str, Any]:
        given = {k: v for k, v in values_of(state).items() if k in self._inputs}
        final = invoke_inside(self.graph, given, self.name, raw=True)
        return {k: v for k, v in final.items() if k in self._outputs}


def inside_task() -> tuple[TaskScope, RunContext] | None:
    """The task (and its run) calling now, if a graph is running a node on this thread."""
    scope = current_task.get()
    run = current_run.get()
    if scope is None or run is None:
        return None
    return scope, run


def invoke_inside(
    graph: CompiledGraph, input: Any, node: str | None = None, *, raw: bool = False
) -> Any:
    """Run `graph` as a subgraph of the task calling this; returns its final state (an
    instance of its schema, or the plain values with `raw`). Raises the parent's interrupt
    when the child pauses."""
    from orchestration.pregel.drivers import drive

    found = inside_task()
    if found is None:
        raise RuntimeError("invoke_inside needs a running task")
    scope, run = found
    saver, core, ns = _prepare(graph, input, node or scope.task.node, scope, run)
    gen = drive(core, saver)
    while True:
        try:
            _, mode, chunk = next(gen)
        except StopIteration as stop:
            return _result(graph, stop.value, raw)
        if run.sink is not None:
            run.sink.emit(ns, mode, chunk)


async def ainvoke_inside(
    graph: CompiledGraph, input: Any, node: str | None = None, *, raw: bool = False
) -> Any:
    from orchestration.pregel.drivers import adrive

    found = inside_task()
    if found is None:
        raise RuntimeError("ainvoke_inside needs a running task")
    scope, run = found
    saver, core, ns = _prepare(graph, input, node or scope.task.node, scope, run)
    result: list[Any] = []
    async for _, mode, chunk in adrive(core, saver, result):
        if run.sink is not None:
            run.sink.emit(ns, mode, chunk)
    return _result(graph, result[0], raw)


def _result(graph: CompiledGraph, values: dict[str, Any], raw: bool) -> Any:
    if raw:
        return values
    schema = graph.spec.schema
    return dict(values) if schema.kind == "typeddict" else schema.instance(values)


def _prepare(
    graph: CompiledGraph, input: Any, node: str, scope: TaskScope, run: RunContext
) -> tuple[BaseCheckpointSaver, Core, str]:
    if graph.saver is not None:
        raise OrchestrationError(
            f"node {scope.task.node!r} runs a graph that has its own checkpoint saver as a "
            "subgraph; a subgraph checkpoints in its parent's thread and saver. Use the graph "
            "compiled without a checkpointer."
        )
    if graph.interrupt_before or graph.interrupt_after:
        raise OrchestrationError(
            f"node {scope.task.node!r} runs a graph with breakpoints (interrupt_before/after) "
            "as a subgraph; pause it with interrupt() inside its nodes instead"
        )
    saver = run.saver
    if isinstance(saver, ExitSaver):
        saver = saver.nested()  # durability="exit": the call's end stores the child's too
    if saver is None:
        # The parent keeps nothing, but the child still needs its steps to pause and resume
        # within this call; a private memory saver does that and goes away with the call.
        from orchestration.checkpoint.memory import InMemoryCheckpointSaver

        saver = InMemoryCheckpointSaver()
    # a persistent child (compile(checkpointer=True)) keeps one chain under the node's name
    ns = child_ns(run.checkpoint_ns, node, None if graph.persistent else _own_chain(scope.task))
    marker = f"{scope.task.id}:{scope.subcalls}"
    scope.subcalls += 1
    sink = run.sink
    modes = frozenset()
    if sink is not None and sink.subgraphs:
        modes = sink.modes & _CHILD_MODES
    # The node's config, as LangGraph hands it to a subgraph: the same keys, the child's ns.
    configurable = {**run.config.get("configurable", {}), "checkpoint_ns": ns}
    config = {**run.config, "configurable": configurable}
    context = RunContext(saver, run.thread_id, ns, run.store, sink, config, run.durable,
                         run.context)
    settings = RunSettings(
        graph.spec, run.thread_id, graph.interrupt_before, graph.interrupt_after, modes,
        {PARENT_KEY: marker, PARENT_CHECKPOINT: scope.task.checkpoint_id},
        run.config.get("recursion_limit", DEFAULT_RECURSION_LIMIT), context,
    )
    return saver, _child_core(settings, input, node, marker, scope, graph.persistent), ns


def _own_chain(task: Task) -> str | None:
    """The task id that names a `Send` task's namespace; None for a node's one task of a
    superstep, whose chains share the node's namespace (one runs at a time)."""
    return None if task.arg is NO_ARG else task.id


def _child_core(
    settings: RunSettings, input: Any, node: str, marker: str, scope: TaskScope,
    persistent: bool = False,
) -> Core:
    """Start or continue this task's chain in the child namespace, deliver the answers the
    parent's task holds for it, and return the child's final values; raise the parent's
    interrupt when the child waits for an answer the parent does not have yet. A persistent
    child's new chain continues the state its namespace's last chain finished with (the
    input applied to it, as `invoke` on a thread that ran before)."""
    config = CheckpointConfig(settings.thread_id, checkpoint_ns=settings.checkpoint_ns)
    base = scope.calls  # the parent's answers from this position on are the child's
    answers = scope.resume[base:]
    head: CheckpointTuple | None = yield Get(config)
    if head is None or head.metadata.extra.get(PARENT_KEY) != marker:
        goes_on = persistent and head is not None and not head.checkpoint.next
        start = settings if goes_on else RunSettings(**{**_fields(settings), "fresh": True})
        yield from run_core(start, input, config)
        consumed = 0
    else:
        consumed = yield from _answers_received(head, marker)
    stalled = None
    while True:
        head = yield Get(config)
        assert head is not None
        if not head.checkpoint.next:
            scope.calls = base + consumed
            return dict(head.checkpoint.values)
        waiting = pending_interrupts(head_of(head)) if head.pending_writes else []
        if not waiting:
            if stalled == head.checkpoint.id:
                raise OrchestrationError(
                    f"subgraph {settings.checkpoint_ns!r} stopped at checkpoint "
                    f"{head.checkpoint.id} before {list(head.checkpoint.next)} without an "
                    "interrupt (a breakpoint: interrupt_before/after inside a subgraph is not "
                    "supported; use interrupt() in the child's node)"
                )
            stalled = head.checkpoint.id
            yield from run_core(settings, None, config)  # it crashed mid-run: continue
            continue
        _, outcome = waiting[0]
        asked = outcome.interrupt
        assert asked is not None
        if consumed < len(answers):
            resume = Command(resume={asked.id: answers[consumed]})
            consumed += 1
            yield from run_core(settings, resume, config)
            continue
        index = base + consumed
        scope.calls = index + 1
        path = f"{node}{SEPARATOR}{asked.node}"
        raise GraphInterrupt(
            Interrupt(interrupt_id(scope.task.id, index), asked.value, path), index
        )


def _answers_received(head: CheckpointTuple, marker: str) -> Generator[Any, Any, int]:
    """How many answers this task's chain has received: the `__resume__` writes along it."""
    count = 0
    current: CheckpointTuple | None = head
    while current is not None and current.metadata.extra.get(PARENT_KEY) == marker:
        count += sum(len(w.value) for w in current.pending_writes if w.channel == RESUME)
        parent = current.parent_config
        current = (yield Get(parent)) if parent is not None else None
    return count


def _fields(settings: RunSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in RunSettings.__dataclass_fields__}


def branch_from_child(
    saver: BaseCheckpointSaver, child: CheckpointConfig, extra: Mapping[str, Any] | None = None
) -> CheckpointConfig:
    """Start a branch of the parent run from a subgraph's checkpoint `child` (a config naming
    its namespace and id). Writes a fork copy of the parent checkpoint the subgraph's task ran
    from, and a fork copy of `child` that the task on that copy will continue from; returns
    the parent copy's config. Continue the thread (`invoke(None, config)`) to run the branch:
    the child resumes at `child` (asking again any interrupt it waited at), its earlier
    supersteps are not run again. Nothing existing is changed."""
    from dataclasses import replace

    from orchestration.checkpoint.base import CheckpointMetadata, new_checkpoint_id
    from orchestration.errors import CheckpointNotFound, InvalidUpdateError
    from orchestration.pregel.plan import now, plan_tasks

    ns = child.checkpoint_ns
    if not ns or child.checkpoint_id is None:
        raise InvalidUpdateError(
            "branch_from_child needs a subgraph checkpoint: a config with checkpoint_ns and "
            "checkpoint_id; to branch the root graph, use invoke(..., config.with_checkpoint_id())"
        )
    if SEPARATOR in ns:
        raise InvalidUpdateError(
            f"branching from a nested subgraph ({ns!r}) is not supported yet; branch from a "
            f"checkpoint of {ns.split(SEPARATOR)[0]!r} instead"
        )
    tup = saver.get_tuple(child)
    if tup is None:
        raise CheckpointNotFound(
            f"thread {child.thread_id!r} has no checkpoint {child.checkpoint_id!r} in subgraph "
            f"{ns!r}"
        )
    marker = str(tup.metadata.extra.get(PARENT_KEY, ""))
    parent_id = tup.metadata.extra.get(PARENT_CHECKPOINT)
    task_id, _, call = marker.partition(":")
    parent = (
        saver.get_tuple(CheckpointConfig(child.thread_id, str(parent_id))) if parent_id else None
    )
    if parent is None or not call:
        raise CheckpointNotFound(
            f"checkpoint {child.checkpoint_id!r} of subgraph {ns!r} does not name the parent "
            "checkpoint it ran from; it cannot be branched from"
        )
    old_tasks = plan_tasks(parent.checkpoint)
    position = next((i for i, t in enumerate(old_tasks) if t.id == task_id), None)
    if position is None:
        raise CheckpointNotFound(
            f"the parent checkpoint {parent_id!r} has no task that ran subgraph {ns!r}"
        )
    copy = replace(parent.checkpoint, id=new_checkpoint_id(), ts=now())
    meta = CheckpointMetadata("fork", parent.metadata.step, {}, dict(extra or {}))
    parent_config = saver.put(parent.config, copy, meta)
    new_task = plan_tasks(copy)[position]
    child_copy = replace(tup.checkpoint, id=new_checkpoint_id(), ts=now())
    child_extra = {
        **tup.metadata.extra, **dict(extra or {}),
        PARENT_KEY: f"{new_task.id}:{call}", PARENT_CHECKPOINT: copy.id,
    }
    child_meta = CheckpointMetadata("fork", tup.metadata.step, {}, child_extra)
    # a Send task's chain lives under its task id: the copy's task has a new one
    copy_ns = child_ns("", new_task.node, _own_chain(new_task))
    saver.put(replace(tup.config, checkpoint_ns=copy_ns), child_copy, child_meta)
    return parent_config


def pending_tasks(
    graph: CompiledGraph, saver: BaseCheckpointSaver, tup: CheckpointTuple, *,
    subgraphs: bool = True,
) -> tuple[Any, ...]:
    """`StateSnapshot.tasks`: the checkpoint's pending tasks with their interrupts, and, for a
    task that runs a subgraph (added with `add_node(name, compiled)`), with `subgraphs`
    (`get_state(config, subgraphs=True)`) the subgraph's state from this task's own chain,
    read from the saver; without it the subgraph's config (nothing is read)."""
    from orchestration.pregel.plan import plan_tasks, task_views

    head = head_of(tup) if tup.pending_writes else None
    waiting = {t.id: o for t, o in pending_interrupts(head)} if head is not None else {}
    config = tup.config
    planned = plan_tasks(tup.checkpoint)
    tasks = []
    for task, view in zip(planned, task_views(planned, head.writes if head else {}), strict=True):
        outcome = waiting.get(task.id)
        # the latest state's tasks show the question still waiting, not an answered one
        asked = (outcome.interrupt,) if outcome is not None and outcome.interrupt else ()
        state = None
        node = graph.spec.nodes.get(task.node)
        if node is not None and isinstance(node.fn, SubgraphNode):
            child_config = CheckpointConfig(
                config.thread_id,
                checkpoint_ns=child_ns(config.checkpoint_ns, task.node, _own_chain(task)),
            )
            if not subgraphs:
                # LangGraph's: the subgraph's config, for `get_state(task.state)` to read
                tasks.append(replace(view, interrupts=asked, state=child_config))
                continue
            child_head = saver.get_tuple(child_config)
            marker = (
                str(child_head.metadata.extra.get(PARENT_KEY, "")) if child_head is not None
                else ""
            )
            if child_head is not None and marker.startswith(f"{task.id}:"):
                child = node.fn.graph.with_checkpoint_saver(saver)
                state = child.get_state(child_head.config, subgraphs=True)
        tasks.append(replace(view, interrupts=asked, state=state))
    return tuple(tasks)
