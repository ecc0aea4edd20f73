"""The superstep loop: plan the ready tasks, run them, apply their writes, write a checkpoint.

One core for sync and async. The loop is a generator that *asks* for I/O by yielding small
effect values (`_Get`, `_Put`, `_PutWrites`, `_Execute`, `_Emit`) and receives the answers;
`_drive` (threads) and `_adrive` (asyncio) fulfil them. Planning and applying writes are pure
functions, so the two drivers cannot drift apart.

Pending writes (on the checkpoint a superstep started from) use these channels per task id:
state fields (the task's update), `__goto__` (where a returned Command went), `__done__`
(the task finished), `__interrupt__` (it waits for an answer), `__resume__` (answers so far).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    new_checkpoint_id,
)
from orchestration.errors import (
    CheckpointNotFound,
    GraphRecursionError,
    InvalidUpdateError,
    NodeError,
    SerializationError,
    ThreadBusyError,
)
from orchestration.interrupts import GraphInterrupt, TaskScope, current_task, interrupt_id
from orchestration.reducers import last_value
from orchestration.types import END, START, Command, Interrupt, Send

if TYPE_CHECKING:
    from orchestration.graph import GraphSpec, NodeSpec
    from orchestration.state import Schema

StreamMode = Literal["updates", "values"]

DONE = "__done__"
GOTO = "__goto__"
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
PAUSED = "__paused__"
# Pseudo task id under which a stop caused by interrupt_before is recorded on the checkpoint.
BEFORE_TASK = "__interrupt_before__"
NO_SAVER_THREAD = "__unsaved__"

_NO_ARG: Any = object()


# -- values the core passes around ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    node: str
    index: int
    arg: Any = _NO_ARG  # a Send's argument; _NO_ARG means "the state"


@dataclass(slots=True)
class Outcome:
    """What running (or having run) one task produced."""

    task: Task
    update: dict[str, Any] | None = None  # set when the task finished
    goto: list[str | Send] = field(default_factory=list)
    interrupt: Interrupt | None = None
    interrupt_index: int = 0
    resume: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    fresh: bool = True  # run in this call (False: recovered from pending writes)


@dataclass(slots=True)
class Head:
    """The checkpoint the loop stands on, with its pending writes grouped by task id."""

    config: CheckpointConfig
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    writes: dict[str, list[tuple[str, Any]]]
    state: Any = _NO_ARG  # the schema instance of checkpoint.values, built once


@dataclass(frozen=True, slots=True)
class RunSettings:
    spec: GraphSpec
    thread_id: str
    interrupt_before: frozenset[str]
    interrupt_after: frozenset[str]
    modes: frozenset[str]
    extra: Mapping[str, Any]
    recursion_limit: int


# Effects: what the core asks its driver to do.
@dataclass(frozen=True, slots=True)
class _Get:
    config: CheckpointConfig


@dataclass(frozen=True, slots=True)
class _List:
    config: CheckpointConfig
    limit: int | None
    before: CheckpointConfig | None


@dataclass(frozen=True, slots=True)
class _Put:
    config: CheckpointConfig
    checkpoint: Checkpoint
    metadata: CheckpointMetadata


@dataclass(frozen=True, slots=True)
class _PutWrites:
    config: CheckpointConfig
    writes: list[tuple[str, Any]]
    task_id: str


@dataclass(frozen=True, slots=True)
class _Execute:
    spec: GraphSpec
    work: list[tuple[Task, Any, list[Any]]]  # task, its input, resume answers so far


@dataclass(frozen=True, slots=True)
class _Emit:
    mode: str
    chunk: Any


Effect = _Get | _List | _Put | _PutWrites | _Execute | _Emit
Core = Generator[Effect, Any, Any]


# -- pure planning -----------------------------------------------------------------------------


def task_id(checkpoint_id: str, index: int, node: str) -> str:
    """Deterministic per (checkpoint, task): a resume matches pending writes to tasks by it."""
    return hashlib.blake2b(f"{checkpoint_id}:{index}:{node}".encode(), digest_size=10).hexdigest()


def plan_tasks(checkpoint: Checkpoint) -> list[Task]:
    """The tasks a checkpoint's `next` stands for: plain nodes first, then queued Sends."""
    sends = checkpoint.internal.get("sends", ())
    plain = len(checkpoint.next) - len(sends)
    cid = checkpoint.id
    tasks = [Task(task_id(cid, i, node), node, i) for i, node in enumerate(checkpoint.next[:plain])]
    for offset, (node, arg) in enumerate(sends):
        index = plain + offset
        tasks.append(Task(task_id(cid, index, node), node, index, arg))
    return tasks


def plan_next(
    spec: GraphSpec,
    finished: Sequence[tuple[str, Sequence[str | Send]]],
    state: Any,
    joins: Mapping[str, Sequence[str]],
    step: int,
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Where the graph goes after `finished` (node, its Command gotos) ran, in task order.

    Returns the next checkpoint's `next` and `internal` (queued Sends, join barriers)."""
    plain: dict[str, None] = {}
    sends: list[list[Any]] = []
    seen = {key: list(sources) for key, sources in joins.items()}

    def add(target: str | Send, source: str) -> None:
        name = target.node if isinstance(target, Send) else target
        if name == END and not isinstance(target, Send):
            return
        if name not in spec.nodes:
            raise InvalidUpdateError(
                f"{source!r} routed to {name!r} in step {step}, which is not a node of the graph "
                f"(nodes: {sorted(spec.nodes)})"
            )
        if isinstance(target, Send):
            sends.append([target.node, target.arg])
        else:
            plain[name] = None

    for node, goto in finished:
        for target in goto:
            add(target, node)
        for target in spec.edges.get(node, ()):
            add(target, node)
        for branch in spec.branches.get(node, ()):
            try:
                routed = branch.route(state)
            except InvalidUpdateError:
                raise
            except Exception as error:
                raise NodeError(node, step, error) from error
            for target in routed:
                add(target, node)
        for index in spec.joins_by_source.get(node, ()):
            key = str(index)
            if node not in seen.setdefault(key, []):
                seen[key].append(node)
    for index, (sources, target) in enumerate(spec.joins):
        key = str(index)
        if key in seen and all(s in seen[key] for s in sources):
            add(target, "+".join(sources))
            del seen[key]
    internal: dict[str, Any] = {}
    if sends:
        internal["sends"] = sends
    if seen:
        internal["joins"] = seen
    return (*plain, *(node for node, _ in sends)), internal


def apply_updates(
    schema: Schema,
    values: Mapping[str, Any],
    updates: Sequence[tuple[str, Mapping[str, Any]]],
    step: int,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Apply (writer, update) pairs in order through the reducers.

    Returns the new values and, per changed field, the writers (for error messages)."""
    new = dict(values)
    writers: dict[str, list[str]] = {}
    reducers = schema.reducers
    for writer, update in updates:
        for key, value in update.items():
            reducer = reducers[key]
            who = writers.setdefault(key, [])
            if reducer is last_value:
                if who:
                    raise InvalidUpdateError(
                        f"{who[0]!r} and {writer!r} both wrote {key!r} in step {step}; a field "
                        "without a reducer takes one write per step: write it from one node, or "
                        f"give it a reducer (Annotated[..., topic] or a custom one)"
                    )
                new[key] = value
            else:
                try:
                    new[key] = reducer(schema.current_or_empty(new, key), value)
                except Exception as error:
                    raise InvalidUpdateError(
                        f"the reducer of {key!r} refused the update from {writer!r} in step "
                        f"{step}: {type(error).__name__}: {error}"
                    ) from error
            who.append(writer)
    return new, writers


def new_versions(
    versions: Mapping[str, str], changed: Mapping[str, Any], checkpoint_id: str
) -> dict[str, str]:
    out = dict(versions)
    for key in changed:
        out[key] = checkpoint_id
    return out


def normalize_result(schema: Schema, node: str, result: Any) -> tuple[dict[str, Any], list[Any]]:
    """A node's return value -> (update, gotos). Refuses anything but a mapping, None, Command."""
    if result is None:
        return {}, []
    if isinstance(result, Command):
        update = {} if result.update is None else schema.check_update(node, result.update)
        goto = result.goto
        gotos = [goto] if isinstance(goto, str | Send) else list(goto)
        return update, gotos
    return schema.check_update(node, result), []


def encode_done(outcome: Outcome) -> list[tuple[str, Any]]:
    writes: list[tuple[str, Any]] = list((outcome.update or {}).items())
    if outcome.goto:
        writes.append((GOTO, [_encode_goto(g) for g in outcome.goto]))
    writes.append((DONE, None))
    return writes


def _encode_goto(target: str | Send) -> Any:
    return {"node": target.node, "arg": target.arg} if isinstance(target, Send) else target


def _decode_goto(target: Any) -> str | Send:
    return Send(target["node"], target["arg"]) if isinstance(target, Mapping) else target


def encode_waiting(outcome: Outcome) -> list[tuple[str, Any]]:
    writes: list[tuple[str, Any]] = []
    if outcome.resume:
        writes.append((RESUME, list(outcome.resume)))
    if outcome.interrupt is not None:
        it = outcome.interrupt
        record = {"id": it.id, "value": it.value, "node": it.node, "index": outcome.interrupt_index}
        writes.append((INTERRUPT, record))
    return writes


def recover(task: Task, writes: Sequence[tuple[str, Any]]) -> Outcome:
    """A task's state from its pending writes: done, waiting for an answer, or to re-run."""
    outcome = Outcome(task, fresh=False)
    update: dict[str, Any] = {}
    done = False
    for channel, value in writes:
        if channel == DONE:
            done = True
        elif channel == GOTO:
            outcome.goto = [_decode_goto(g) for g in value]
        elif channel == RESUME:
            outcome.resume = list(value)
        elif channel == INTERRUPT:
            outcome.interrupt = Interrupt(value["id"], value["value"], value["node"])
            outcome.interrupt_index = value.get("index", 0)
        elif channel != PAUSED:
            update[channel] = value
    if done:
        outcome.update = update
        outcome.interrupt = None
    elif outcome.interrupt is not None and outcome.interrupt_index < len(outcome.resume):
        outcome.interrupt = None  # answered: the record stays so a fork can ask it again
    return outcome


def pending_interrupts(head: Head) -> list[tuple[Task, Outcome]]:
    found = []
    for task in plan_tasks(head.checkpoint):
        writes = head.writes.get(task.id)
        if writes:
            outcome = recover(task, writes)
            if outcome.interrupt is not None and outcome.update is None:
                found.append((task, outcome))
    return found


def interrupts_of(tup: CheckpointTuple) -> tuple[Interrupt, ...]:
    head = head_of(tup)
    return tuple(outcome.interrupt for _, outcome in pending_interrupts(head) if outcome.interrupt)


def head_of(tup: CheckpointTuple) -> Head:
    writes: dict[str, list[tuple[str, Any]]] = {}
    for write in tup.pending_writes:
        writes.setdefault(write.task_id, []).append((write.channel, write.value))
    return Head(tup.config, tup.checkpoint, tup.metadata, writes)


def state_of(schema: Schema, head: Head) -> Any:
    if head.state is _NO_ARG:
        head.state = schema.instance(head.checkpoint.values)
    return head.state


def _now() -> datetime:
    return datetime.now(UTC)


def _writes_metadata(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """metadata.writes: node -> update (a list of updates when a node ran several Send tasks)."""
    out: dict[str, Any] = {}
    for o in outcomes:
        node = o.task.node
        if node in out:
            previous = out[node]
            earlier = previous if isinstance(previous, list) else [previous]
            out[node] = [*earlier, o.update]
        else:
            out[node] = o.update
    return out


# -- the core: one run of `invoke` / `stream` --------------------------------------------------


def run_core(settings: RunSettings, input: Any, config: CheckpointConfig) -> Core:
    """Everything `invoke` does; returns the final (or paused) state as a schema instance."""
    spec = settings.spec
    head, skip_before = yield from _begin(settings, input, config)
    if "values" in settings.modes and head.metadata.source == "input":
        yield _Emit("values", state_of(spec.schema, head))
    steps = 0
    while True:
        tasks = plan_tasks(head.checkpoint)
        if not tasks:
            return state_of(spec.schema, head)
        if steps >= settings.recursion_limit:
            raise GraphRecursionError(
                f"thread {settings.thread_id!r} ran {steps} supersteps without finishing "
                f"(recursion_limit={settings.recursion_limit}); it stopped at checkpoint "
                f"{head.checkpoint.id} before {list(head.checkpoint.next)}. Resume it with "
                "invoke(None, config, recursion_limit=<higher>) or fix the loop in the graph."
            )
        # A superstep that already started (pending writes) never stops before its tasks again.
        if (
            settings.interrupt_before
            and not skip_before
            and not head.writes
            and not head.checkpoint.internal.get("skip_before")
        ):
            stop = [t.node for t in tasks if t.node in settings.interrupt_before]
            if stop:
                yield _PutWrites(head.config, [(PAUSED, stop)], BEFORE_TASK)
                return state_of(spec.schema, head)
        skip_before = False
        paused, new_head = yield from _superstep(settings, head, tasks)
        if paused:
            return state_of(spec.schema, head)
        head = new_head
        steps += 1
        ran = {t.node for t in tasks}
        if head.checkpoint.next and ran & settings.interrupt_after:
            return state_of(spec.schema, head)


def _superstep(settings: RunSettings, head: Head, tasks: list[Task]) -> Core:
    """Run one superstep from `head`. Returns (paused, new head)."""
    spec = settings.spec
    step = head.metadata.step + 1
    outcomes: list[Outcome | None] = [None] * len(tasks)
    work: list[tuple[Task, Any, list[Any]]] = []
    slots: list[int] = []
    state = state_of(spec.schema, head)
    for i, task in enumerate(tasks):
        resume: list[Any] = []
        writes = head.writes.get(task.id)
        if writes:
            recovered = recover(task, writes)
            if recovered.update is not None or recovered.interrupt is not None:
                outcomes[i] = recovered  # finished earlier, or still waiting for an answer
                continue
            resume = recovered.resume
        work.append((task, state if task.arg is _NO_ARG else task.arg, resume))
        slots.append(i)
    if work:
        results: list[Outcome] = yield _Execute(spec, work)
        for i, outcome in zip(slots, results, strict=True):
            outcomes[i] = outcome
    done = [o for o in outcomes if o is not None]
    failed = [o for o in done if o.error is not None]
    waiting = [o for o in done if o.interrupt is not None]
    if failed or waiting:
        yield from _save_fresh(head, done)
        if failed:
            _raise_failure(failed[0], step)
        if "updates" in settings.modes:
            yield _Emit("updates", {INTERRUPT: tuple(o.interrupt for o in waiting if o.interrupt)})
        return True, head
    try:
        new_head = yield from _commit(settings, head, done, step)
    except (NodeError, InvalidUpdateError):
        # The tasks all ran: keep their writes so a resume only re-plans.
        yield from _save_fresh(head, done)
        raise
    return False, new_head


def _save_fresh(head: Head, outcomes: Sequence[Outcome]) -> Core:
    for o in outcomes:
        if not o.fresh or o.error is not None:
            continue
        writes = encode_done(o) if o.update is not None else encode_waiting(o)
        try:
            yield _PutWrites(head.config, writes, o.task.id)
        except SerializationError as error:
            what = "its update" if o.update is not None else "the value it passed to interrupt()"
            raise SerializationError(
                f"{error} (in {what}, node {o.task.node!r}, step {head.metadata.step + 1}). "
                "The thread is unchanged: make the node use storable values and run it again."
            ) from error


def _raise_failure(outcome: Outcome, step: int) -> None:
    error = outcome.error
    assert error is not None
    if isinstance(error, InvalidUpdateError):
        raise error
    raise NodeError(outcome.task.node, step, error) from error


def _commit(settings: RunSettings, head: Head, outcomes: list[Outcome], step: int) -> Core:
    spec = settings.spec
    updates = [(o.task.node, o.update or {}) for o in outcomes]
    values, writers = apply_updates(spec.schema, head.checkpoint.values, updates, step)
    state = spec.schema.instance(values)
    finished = [(o.task.node, o.goto) for o in outcomes]
    next_nodes, internal = plan_next(
        spec, finished, state, head.checkpoint.internal.get("joins", {}), step
    )
    new_id = new_checkpoint_id()
    checkpoint = Checkpoint(
        new_id,
        _now(),
        values,
        new_versions(head.checkpoint.versions, writers, new_id),
        next_nodes,
        internal,
    )
    writes_meta = _writes_metadata(outcomes)
    metadata = CheckpointMetadata("loop", step, writes_meta, settings.extra)
    config = yield from _put(head.config, checkpoint, metadata, writers)
    if "updates" in settings.modes:
        yield _Emit("updates", writes_meta)
    if "values" in settings.modes:
        yield _Emit("values", state)
    return Head(config, checkpoint, metadata, {}, state)


_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")


def _put(
    parent: CheckpointConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    writers: Mapping[str, Sequence[str]],
) -> Core:
    """Store a checkpoint; a SerializationError gets the writing node(s) added to its message."""
    try:
        return (yield _Put(parent, checkpoint, metadata))
    except SerializationError as error:
        field_name = getattr(error, "field", None)
        if field_name is None:
            quoted = {a or b for a, b in _QUOTED.findall(str(error))}
            field_name = next((f for f in writers if f in quoted), None)
        culprits = sorted(set(writers.get(field_name, ()))) if field_name else []
        where = (
            f"field {field_name!r} was written by {culprits} in step {metadata.step}"
            if culprits
            else f"step {metadata.step} wrote {sorted(writers)}"
        )
        raise SerializationError(
            f"{error} ({where}). Nothing was saved for this step and the thread is unchanged: "
            "make the node return storable values (or register the type with "
            "orchestration.checkpoint.serde.register) and run the thread again."
        ) from error


# -- starting a run: the invoke table ----------------------------------------------------------


def _begin(settings: RunSettings, input: Any, config: CheckpointConfig) -> Core:
    """Find where this call starts (the invoke table). Returns (head, skip_before)."""
    spec = settings.spec
    tup: CheckpointTuple | None = yield _Get(config)
    forked = False
    if config.checkpoint_id is not None:
        if tup is None:
            raise CheckpointNotFound(not_found_message(settings.thread_id, config.checkpoint_id))
        latest: CheckpointTuple | None = yield _Get(config.with_checkpoint_id(None))
        if latest is None or latest.checkpoint.id != tup.checkpoint.id:
            carry = isinstance(input, Command) and input.resume is not None
            tup, input = yield from _fork(settings, tup, input if carry else None, input)
            forked = True
    head = head_of(tup) if tup is not None else None

    if isinstance(input, Command):
        if input.resume is not None:
            if head is None:
                raise InvalidUpdateError(
                    f"thread {settings.thread_id!r} has no checkpoint, so there is nothing to "
                    "resume; start it with invoke(input, config)"
                )
            yield from _answer(settings, head, input.resume)
            if input.update is not None or input.goto:
                raise InvalidUpdateError(
                    "Command(resume=...) as input cannot also carry update= or goto=; use "
                    "update_state(config, values) first, then resume"
                )
            return head, True
        updates = spec.schema.check_update("input", input.update or {})
        goto = [input.goto] if isinstance(input.goto, str | Send) else list(input.goto)
    else:
        updates = spec.schema.input_updates(input)
        goto = []

    if head is None:
        return (yield from _write_input(settings, None, updates, goto)), False
    if head.checkpoint.next:
        if not updates and not goto:
            return head, BEFORE_TASK in head.writes
        if not forked and config.checkpoint_id is None:
            raise ThreadBusyError(_busy(settings.thread_id, head))
        return (yield from _write_input(settings, head, updates, goto, keep_next=True)), False
    if not updates and not goto:
        return head, False  # finished, nothing new: the loop finds no task and returns its state
    return (yield from _write_input(settings, head, updates, goto)), False


def _write_input(
    settings: RunSettings,
    head: Head | None,
    updates: dict[str, Any],
    goto: list[str | Send],
    *,
    keep_next: bool = False,
) -> Core:
    spec = settings.spec
    base = spec.schema.initial_values() if head is None else head.checkpoint.values
    values, writers = apply_updates(spec.schema, base, [("input", updates)], 0)
    state = spec.schema.instance(values)
    new_id = new_checkpoint_id()
    if keep_next and head is not None:
        next_nodes, internal = head.checkpoint.next, dict(head.checkpoint.internal)
        if goto:
            extra_next, extra_internal = plan_next(spec, [("input", goto)], state, {}, 0)
            next_nodes = (*next_nodes, *extra_next)
            internal["sends"] = [*internal.get("sends", ()), *extra_internal.get("sends", ())]
    elif goto:
        next_nodes, internal = plan_next(spec, [("input", goto)], state, {}, 0)
    else:
        next_nodes, internal = plan_next(spec, [(START, ())], state, {}, 0)
    if head is None:
        versions = {key: new_id for key in values}
        parent = CheckpointConfig(settings.thread_id)
        step = 0
    else:
        versions = new_versions(head.checkpoint.versions, writers, new_id)
        parent = head.config
        step = head.metadata.step + 1
    checkpoint = Checkpoint(new_id, _now(), values, versions, next_nodes, internal)
    metadata = CheckpointMetadata("input", step, {START: updates}, settings.extra)
    config = yield from _put(parent, checkpoint, metadata, {k: ["input"] for k in writers})
    return Head(config, checkpoint, metadata, {}, state)


def _fork(
    settings: RunSettings, tup: CheckpointTuple, resume_input: Command[Any] | None, input: Any
) -> Core:
    """Copy a past checkpoint as the thread's new head (`source="fork"`, parent = it).

    When the caller answers interrupts of that checkpoint (`Command(resume=)`), its pending
    writes are carried over to the copy (task and interrupt ids remapped) so the answer lands."""
    source = tup.checkpoint
    copy = replace(source, id=new_checkpoint_id(), ts=_now())
    metadata = CheckpointMetadata("fork", tup.metadata.step, {}, settings.extra)
    config = yield from _put(tup.config, copy, metadata, {})
    writes: list[Any] = []
    if resume_input is not None and tup.pending_writes:
        old_head = head_of(tup)
        renamed: dict[str, str] = {}
        for old, new in zip(plan_tasks(source), plan_tasks(copy), strict=True):
            task_writes = old_head.writes.get(old.id)
            if not task_writes:
                continue
            carried = _carry(task_writes, new.id, renamed)
            yield _PutWrites(config, carried, new.id)
            writes.extend(_pending(new.id, carried))
        resume = resume_input.resume
        if isinstance(resume, Mapping) and resume and all(k in renamed for k in resume):
            input = replace(resume_input, resume={renamed[k]: v for k, v in resume.items()})
    new_tup = CheckpointTuple(config, copy, metadata, tup.config, tuple(writes))
    return new_tup, input


def _carry(
    writes: Sequence[tuple[str, Any]], new_task_id: str, renamed: dict[str, str]
) -> list[tuple[str, Any]]:
    """A task's pending writes for the fork copy: an interrupt is re-opened there (earlier
    answers to it dropped) under the id it gets on the copy."""
    record = next((v for c, v in writes if c == INTERRUPT), None)
    if record is None or any(c == DONE for c, _ in writes):
        return list(writes)
    index = record.get("index", 0)
    resume: list[Any] = next((v for c, v in writes if c == RESUME), [])[:index]
    new_iid = interrupt_id(new_task_id, index)
    renamed[record["id"]] = new_iid
    carried: list[tuple[str, Any]] = [(RESUME, resume)] if resume else []
    carried.append((INTERRUPT, {**record, "id": new_iid}))
    return carried


def _pending(tid: str, writes: Sequence[tuple[str, Any]]) -> list[PendingWrite]:
    return [PendingWrite(tid, channel, value) for channel, value in writes]


def _answer(settings: RunSettings, head: Head, resume: Any) -> Core:
    """Record `Command(resume=...)` answers as `__resume__` pending writes of their tasks."""
    waiting = pending_interrupts(head)
    if not waiting:
        raise InvalidUpdateError(
            f"thread {settings.thread_id!r} has no pending interrupt to answer at checkpoint "
            f"{head.checkpoint.id} (next: {list(head.checkpoint.next)}); continue it with "
            "invoke(None, config)"
        )
    by_id = {o.interrupt.id: (t, o) for t, o in waiting if o.interrupt is not None}
    if isinstance(resume, Mapping) and resume and all(k in by_id for k in resume):
        answers = dict(resume)
    elif len(by_id) == 1:
        answers = {next(iter(by_id)): resume}
    else:
        raise InvalidUpdateError(
            f"thread {settings.thread_id!r} has {len(by_id)} pending interrupts "
            f"({', '.join(f'{i} in {o.task.node!r}' for i, (_, o) in by_id.items())}); answer "
            "them by id: Command(resume={interrupt_id: answer, ...})"
        )
    for iid, answer in answers.items():
        task, outcome = by_id[iid]
        outcome.resume = [*outcome.resume, answer]
        writes = encode_waiting(outcome)
        yield _PutWrites(head.config, writes, task.id)
        head.writes[task.id] = writes


def not_found_message(thread_id: str, checkpoint_id: str) -> str:
    return (
        f"thread {thread_id!r} has no checkpoint {checkpoint_id!r}; list the thread's "
        "checkpoints with get_state_history(CheckpointConfig(thread_id)) and pick one of their ids"
    )


def _busy(thread_id: str, head: Head) -> str:
    nodes = list(head.checkpoint.next)
    return (
        f"thread {thread_id!r} has not finished: it waits at {nodes} (checkpoint "
        f"{head.checkpoint.id}). Resume it with invoke(None, config) or "
        "invoke(Command(resume=answer), config), or start a branch with new input from a "
        "checkpoint with config.with_checkpoint_id(checkpoint_id)."
    )


# -- update_state -------------------------------------------------------------------------------


def update_core(
    spec: GraphSpec,
    config: CheckpointConfig,
    values: Any,
    as_node: str | None,
    extra: Mapping[str, Any],
) -> Core:
    tup: CheckpointTuple | None = yield _Get(config)
    if tup is None and config.checkpoint_id is not None:
        raise CheckpointNotFound(not_found_message(config.thread_id, config.checkpoint_id))
    if as_node is None:
        as_node = _last_writer(tup)
    elif as_node != START and as_node not in spec.nodes:
        raise InvalidUpdateError(
            f"update_state(as_node={as_node!r}): no such node (nodes: {sorted(spec.nodes)})"
        )
    updates = spec.schema.check_update(as_node, values or {})
    base = spec.schema.initial_values() if tup is None else tup.checkpoint.values
    step = 0 if tup is None else tup.metadata.step + 1
    new_values, writers = apply_updates(spec.schema, base, [(as_node, updates)], step)
    state = spec.schema.instance(new_values)
    joins = {} if tup is None else tup.checkpoint.internal.get("joins", {})
    next_nodes, internal = plan_next(spec, [(as_node, ())], state, joins, step)
    if tup is not None and any(w.task_id == BEFORE_TASK for w in tup.pending_writes):
        internal["skip_before"] = True  # edited at a breakpoint: continuing runs the node
    new_id = new_checkpoint_id()
    versions = (
        {k: new_id for k in new_values}
        if tup is None
        else new_versions(tup.checkpoint.versions, writers, new_id)
    )
    checkpoint = Checkpoint(new_id, _now(), new_values, versions, next_nodes, internal)
    metadata = CheckpointMetadata("update", step, {as_node: updates}, extra)
    parent = CheckpointConfig(config.thread_id) if tup is None else tup.config
    return (yield from _put(parent, checkpoint, metadata, {k: [as_node] for k in writers}))


def _last_writer(tup: CheckpointTuple | None) -> str:
    if tup is None:
        return START
    writers = list(tup.metadata.writes)
    if len(writers) == 1:
        return writers[0]
    raise InvalidUpdateError(
        f"update_state cannot tell which node the update is from: checkpoint "
        f"{tup.checkpoint.id} (source {tup.metadata.source!r}) was written by "
        f"{writers or 'no node'}; pass as_node=<node name>"
    )


# -- running tasks -------------------------------------------------------------------------------


def _call_sync(node: NodeSpec, arg: Any) -> Any:
    if node.is_async:
        return asyncio.run(node.fn(arg))
    return node.fn(arg)


def run_task(spec: GraphSpec, task: Task, arg: Any, resume: list[Any]) -> Outcome:
    node = spec.nodes[task.node]
    scope = TaskScope(task.id, task.node, resume)
    token = current_task.set(scope)
    attempt = 0
    try:
        while True:
            attempt += 1
            scope.calls = 0
            try:
                result = _call_sync(node, arg)
            except GraphInterrupt as stop:
                return Outcome(task, interrupt=stop.interrupt, interrupt_index=stop.index,
                               resume=resume)
            except Exception as error:
                if node.retry is not None and node.retry.should_retry(error, attempt):
                    time.sleep(node.retry.delay(attempt))
                    continue
                return Outcome(task, error=error, resume=resume)
            return _finish(spec, task, result)
    finally:
        current_task.reset(token)


async def arun_task(spec: GraphSpec, task: Task, arg: Any, resume: list[Any]) -> Outcome:
    node = spec.nodes[task.node]
    if not node.is_async:
        return await asyncio.to_thread(run_task, spec, task, arg, resume)
    scope = TaskScope(task.id, task.node, resume)
    token = current_task.set(scope)
    attempt = 0
    try:
        while True:
            attempt += 1
            scope.calls = 0
            try:
                result = await node.fn(arg)
            except GraphInterrupt as stop:
                return Outcome(task, interrupt=stop.interrupt, interrupt_index=stop.index,
                               resume=resume)
            except Exception as error:
                if node.retry is not None and node.retry.should_retry(error, attempt):
                    await asyncio.sleep(node.retry.delay(attempt))
                    continue
                return Outcome(task, error=error, resume=resume)
            return _finish(spec, task, result)
    finally:
        current_task.reset(token)


def _finish(spec: GraphSpec, task: Task, result: Any) -> Outcome:
    try:
        update, goto = normalize_result(spec.schema, task.node, result)
    except InvalidUpdateError as error:
        return Outcome(task, error=error)
    return Outcome(task, update=update, goto=goto)


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


def execute_sync(effect: _Execute) -> list[Outcome]:
    work = effect.work
    spec = effect.spec
    first_task, first_arg, first_resume = work[0]
    # The first sync task runs inline on the caller's thread: most supersteps have one task.
    if len(work) == 1 and not spec.nodes[first_task.node].is_async:
        return [run_task(spec, first_task, first_arg, first_resume)]
    pool = _executor()
    inline = not spec.nodes[first_task.node].is_async
    futures = [pool.submit(run_task, spec, t, a, r) for t, a, r in work[1 if inline else 0:]]
    results = [run_task(spec, first_task, first_arg, first_resume)] if inline else []
    results.extend(f.result() for f in futures)
    return results


async def execute_async(effect: _Execute) -> list[Outcome]:
    return list(
        await asyncio.gather(*(arun_task(effect.spec, t, a, r) for t, a, r in effect.work))
    )


# -- drivers -----------------------------------------------------------------------------------


def drive(core: Core, saver: BaseCheckpointSaver | None) -> Generator[tuple[str, Any], None, Any]:
    """Fulfil the core's effects with blocking I/O; yields stream chunks, returns its result."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = core.throw(error) if error is not None else core.send(send)
        except StopIteration as stop:
            return stop.value
        send, error = None, None
        kind = type(effect)
        try:
            if kind is _Execute:
                send = execute_sync(effect)  # type: ignore[arg-type]
            elif kind is _Emit:
                yield effect.mode, effect.chunk  # type: ignore[union-attr]
            elif saver is None:
                send = _no_saver(effect)
            elif kind is _Get:
                send = saver.get_tuple(effect.config)  # type: ignore[union-attr]
            elif kind is _Put:
                send = saver.put(effect.config, effect.checkpoint, effect.metadata)  # type: ignore[union-attr]
            elif kind is _PutWrites:
                saver.put_writes(effect.config, effect.writes, effect.task_id)  # type: ignore[union-attr]
            elif kind is _List:
                send = saver.list(effect.config, effect.limit, before=effect.before)  # type: ignore[union-attr]
        except Exception as caught:
            error = caught


async def adrive(
    core: Core, saver: BaseCheckpointSaver | None, result: list[Any]
) -> AsyncIterator[tuple[str, Any]]:
    """The asyncio twin of `drive`; the core's return value is appended to `result`."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = core.throw(error) if error is not None else core.send(send)
        except StopIteration as stop:
            result.append(stop.value)
            return
        send, error = None, None
        try:
            if isinstance(effect, _Execute):
                send = await execute_async(effect)
            elif isinstance(effect, _Emit):
                yield effect.mode, effect.chunk
            elif saver is None:
                send = _no_saver(effect)
            elif isinstance(effect, _Get):
                send = await saver.aget_tuple(effect.config)
            elif isinstance(effect, _Put):
                send = await saver.aput(effect.config, effect.checkpoint, effect.metadata)
            elif isinstance(effect, _PutWrites):
                await saver.aput_writes(effect.config, effect.writes, effect.task_id)
            elif isinstance(effect, _List):
                send = await saver.alist(effect.config, effect.limit, before=effect.before)
        except Exception as caught:
            error = caught


def _no_saver(effect: Effect) -> Any:
    """Without a saver a run still works; it just cannot be resumed or inspected."""
    if isinstance(effect, _Put):
        return CheckpointConfig(effect.config.thread_id, effect.checkpoint.id)
    if isinstance(effect, _List):
        return []
    return None


def run_to_end(gen: Generator[tuple[str, Any], None, Any]) -> Any:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
