"""Pure superstep planning: which tasks a checkpoint stands for, where the graph goes next, how
writes apply through the reducers, and how a task's pending writes encode and decode. No I/O.

Pending writes (on the checkpoint a superstep started from) use these channels per task id:
state fields (the task's update), `__goto__` (where a returned Command went), `__done__`
(the task finished), `__interrupt__` (it waits for an answer), `__resume__` (answers so far;
kept when the task finishes, so an answer delivered twice is recognised).
Two pseudo task ids never run: `__interrupt_before__` records a breakpoint stop and
`__input__` holds a `Command(update=..., resume=...)`'s update until the resumed step commits,
each update followed by `__held_for__` (the interrupt ids its command answered).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orchestration.checkpoint.base import (
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
)
from orchestration.errors import InvalidUpdateError, ReducerValueError
from orchestration.interrupts import interrupt_id
from orchestration.reducers import last_value
from orchestration.types import END, Command, Interrupt, Overwrite, PregelTask, Send

if TYPE_CHECKING:
    from orchestration.spec import GraphSpec
    from orchestration.state import Schema

DONE = "__done__"
GOTO = "__goto__"
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
PAUSED = "__paused__"
# The results of the functional API's @task calls a paused or failed task had made, by call
# index (`orchestration/func.py`): its re-run takes them instead of calling the tasks again.
TASKS = "__tasks__"
# How a task that failed failed (its repr), for `StateSnapshot.tasks` (`PregelTask.error`).
ERROR = "__error__"
# The channels of a task's pending writes that are the engine's, not the task's update.
BOOKKEEPING = frozenset((DONE, GOTO, INTERRUPT, RESUME, PAUSED, TASKS, ERROR))
# Pseudo task id under which a stop caused by interrupt_before is recorded on the checkpoint.
BEFORE_TASK = "__interrupt_before__"
# Pseudo task id holding the update of a `Command(update=..., resume=...)` input.
INPUT_TASK = "__input__"
# Ends each update held under INPUT_TASK: the ids of the interrupts its command answered.
HELD_FOR = "__held_for__"
NO_SAVER_THREAD = "__unsaved__"

NO_ARG: Any = object()

# The update of a node that returned `None`: this very dict, recognised by identity, so the
# `updates` stream reports `{node: None}` as LangGraph does. Never mutated.
NO_UPDATE: dict[str, Any] = {}

# (node, index of its branch) -> what an async router returned, resolved before planning.
Routed = Mapping[tuple[str, int], Any]


class Task:
    """One node to run in a superstep: the `index`-th entry of its checkpoint's `next`.

    Its `id` (a hash) is only needed to store or match pending writes, which most supersteps
    never do, so it is computed on first use. Not a frozen dataclass: a few are built per
    superstep and a frozen init costs more than the rest of this class's work."""

    __slots__ = ("checkpoint_id", "node", "index", "arg", "push", "_id")

    def __init__(
        self, checkpoint_id: str, node: str, index: int, arg: Any = NO_ARG, push: int = -1
    ) -> None:
        self.checkpoint_id = checkpoint_id
        self.node = node
        self.index = index
        self.arg = arg  # a Send's argument; NO_ARG means "the state"
        self.push = push  # a Send's position among the step's Sends (-1: not a Send)
        self._id: str | None = None

    @property
    def path(self) -> tuple[Any, ...]:
        """LangGraph's task path: pull for a node reached by name, push for the i-th Send."""
        if self.arg is NO_ARG:
            return ("__pregel_pull", self.node)
        return ("__pregel_push", self.push, False)

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = task_id(self.checkpoint_id, self.index, self.node)
        return self._id

    def __repr__(self) -> str:
        return f"Task({self.node!r}, index={self.index}, checkpoint={self.checkpoint_id!r})"


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
    # The record of the interrupt an earlier pass of this task raised on this checkpoint (its
    # last, as LangGraph keeps one per task): the task's writes now replace that pass's, and
    # keep it once the task finishes (a checkpoint's record lists what its step raised).
    raised: list[Any] = field(default_factory=list)
    # [index, result] of each @task call that finished before the task paused or failed
    memo: list[Any] = field(default_factory=list)
    # taken from the node cache instead of running (`pregel/caching.py`)
    cached: bool = False


class Answers(list[Any]):
    """A re-run task's answers so far (the list `interrupt()` reads), carrying the @task
    results its earlier pass recorded (`memo`), so both reach the task's scope together."""

    __slots__ = ("memo",)

    def __init__(self, answers: Sequence[Any], memo: Sequence[Any]) -> None:
        super().__init__(answers)
        self.memo = list(memo)


@dataclass(slots=True)
class Head:
    """The checkpoint the loop stands on, with its pending writes grouped by task id."""

    config: CheckpointConfig
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    writes: dict[str, list[tuple[str, Any]]]
    state: Any = NO_ARG  # the schema instance of checkpoint.values, built once
    # plan_tasks(checkpoint), built once: a resume matches answers to tasks, then runs them.
    tasks: list[Task] | None = None
    parent: CheckpointConfig | None = None  # known when read from the saver
    interrupts: tuple[Interrupt, ...] = ()  # set when the run paused here at interrupt()


def task_id(checkpoint_id: str, index: int, node: str) -> str:
    """Deterministic per (checkpoint, task): a resume matches pending writes to tasks by it."""
    return hashlib.blake2b(f"{checkpoint_id}:{index}:{node}".encode(), digest_size=10).hexdigest()


def plan_tasks(checkpoint: Checkpoint) -> list[Task]:
    """The tasks a checkpoint's `next` stands for: plain nodes first, then queued Sends."""
    cid = checkpoint.id
    sends = checkpoint.internal.get("sends") if checkpoint.internal else None
    if not sends:
        return [Task(cid, node, i) for i, node in enumerate(checkpoint.next)]
    plain = len(checkpoint.next) - len(sends)
    tasks = [Task(cid, node, i) for i, node in enumerate(checkpoint.next[:plain])]
    for offset, (node, arg) in enumerate(sends):
        tasks.append(Task(cid, node, plain + offset, arg, offset))
    return tasks


def tasks_of(head: Head) -> list[Task]:
    if head.tasks is None:
        tasks = plan_tasks(head.checkpoint)
        held = head.writes.get(INPUT_TASK)
        if held:
            tasks += held_goto_tasks(head.checkpoint, tasks, held)
        head.tasks = tasks
    return head.tasks


def held_goto_tasks(
    checkpoint: Checkpoint, tasks: Sequence[Task], held: Sequence[tuple[str, Any]]
) -> list[Task]:
    """The tasks a `Command(resume=..., goto=...)` adds to the superstep it resumes (its goto
    is held under `__input__`, as its update is): they run beside the resumed tasks, as in
    LangGraph. A node the superstep already runs is not added twice."""
    running = {task.node for task in tasks if task.arg is NO_ARG}
    sends = sum(1 for task in tasks if task.arg is not NO_ARG)
    extra: list[Task] = []
    for channel, targets in held:
        if channel != GOTO:
            continue
        for target in map(decode_goto, targets):
            index = len(tasks) + len(extra)
            if isinstance(target, Send):
                extra.append(Task(checkpoint.id, target.node, index, target.arg, sends))
                sends += 1
            elif target not in running:
                running.add(target)
                extra.append(Task(checkpoint.id, target, index))
    return extra


def edits_of(internal: Mapping[str, Any] | None) -> int:
    """How many edits (`update_state`, a fork with values) the thread's line to this checkpoint
    holds. Each wrote a checkpoint one step on without running a node, so the tasks after it
    run one step later than they did on a line without it: `task_key()` subtracts them, and an
    edited branch's tasks keep the keys of the tasks they replay."""
    return int(internal.get("edits", 0)) if internal else 0


def carry_edits(previous: Mapping[str, Any] | None, internal: dict[str, Any]) -> None:
    """Keep the line's edit count (`edits_of`) in a new checkpoint's `internal`."""
    if edits := edits_of(previous):
        internal["edits"] = edits


def plan_next(
    spec: GraphSpec,
    finished: Sequence[tuple[str, Sequence[str | Send]]],
    state: Any,
    joins: Mapping[str, Sequence[str]],
    step: int,
    routed: Routed | None = None,
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Where the graph goes after `finished` (node, its Command gotos) ran, in task order.

    `routed` holds the answers of async routers (awaited by the driver beforehand); sync routers
    are called here. Returns the next checkpoint's `next` and `internal` (queued Sends, join
    barriers)."""
    if not joins:
        static = _static_next(spec, finished)
        if static is not None:
            return static, {}
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
        for index, branch in enumerate(spec.branches.get(node, ())):
            try:
                if branch.is_async:
                    targets = branch.choose((routed or {})[(node, index)])
                else:
                    targets = branch.route(state)
            except InvalidUpdateError:
                raise
            except Exception as error:
                raise router_failed(error, node, step) from None
            for target in targets:
                add(target, node)
        for join in spec.joins_by_source.get(node, ()):
            key = str(join)
            if node not in seen.setdefault(key, []):
                seen[key].append(node)
    for join, (sources, target) in enumerate(spec.joins):
        key = str(join)
        if key in seen and all(s in seen[key] for s in sources):
            add(target, "+".join(sources))
            del seen[key]
    internal: dict[str, Any] = {}
    if sends:
        internal["sends"] = sends
    if seen:
        internal["joins"] = seen
    return (*plain, *(node for node, _ in sends)), internal


def hold_deferred(
    spec: GraphSpec,
    next_nodes: tuple[str, ...],
    internal: dict[str, Any],
    previous: Mapping[str, Any] | None,
) -> tuple[str, ...]:
    """LangGraph's `defer=True`: a deferred node runs only when nothing else is pending. While
    other tasks remain it waits in `internal["deferred"]` (once, however often it is reached).
    Returns the `next` to store; `internal` is updated in place."""
    sends = internal.get("sends") or ()
    plain = next_nodes[: len(next_nodes) - len(sends)]
    waiting = dict.fromkeys((previous or {}).get("deferred", ()))
    waiting.update(dict.fromkeys(n for n in plain if n in spec.deferred))
    others = tuple(n for n in plain if n not in spec.deferred)
    internal.pop("deferred", None)
    if others or sends:
        if waiting:
            internal["deferred"] = list(waiting)
        return (*others, *(node for node, _ in sends))
    return tuple(waiting)


def router_failed(error: Exception, node: str, step: int) -> Exception:
    """A router's own exception, raised as itself (as LangGraph does) with a note naming
    where; marked so the loop keeps the writes of the tasks that finished."""
    error.add_note(f"raised by the router after node {node!r} in step {step}")
    error.stepwise_router = True  # type: ignore[attr-defined]
    return error


def _static_next(
    spec: GraphSpec, finished: Sequence[tuple[str, Sequence[str | Send]]]
) -> tuple[str, ...] | None:
    """`next` when every finished node only has plain edges (validated by compile) and no
    Command goto: the common superstep needs no routing, only the compiled table. `None`
    when some node needs the full planning."""
    routes = spec.static_routes
    if len(finished) == 1:
        node, goto = finished[0]
        if goto:
            return None
        return routes.get(node)
    plain: dict[str, None] = {}
    for node, goto in finished:
        targets = routes.get(node)
        if targets is None or goto:
            return None
        for target in targets:
            plain[target] = None
    return tuple(plain)


def apply_updates(
    schema: Schema,
    values: Mapping[str, Any],
    updates: Sequence[tuple[str, Mapping[str, Any]]],
    step: int,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Apply (writer, update) pairs in order through the reducers; an `Overwrite` sets its
    field and wins over the step's plain updates of it (see `Overwrite`).

    Returns the new values and, per changed field, the writers (for error messages)."""
    if len(updates) == 1 and updates[0][1].keys() <= schema.plain_fields:
        # One writer of fields without reducers (most supersteps): nothing can conflict.
        writer, update = updates[0]
        new = dict(values)
        new.update(update)
        if Overwrite in map(type, update.values()):
            for key, value in update.items():
                if type(value) is Overwrite:
                    new[key] = value.value
        if len(new) > len(values):  # a field written for the first time: see `in_order`
            new = schema.in_order(new)
        return new, {key: [writer] for key in update}
    new = dict(values)
    writers: dict[str, list[str]] = {}
    overwritten: dict[str, str] = {}  # field -> the writer of its Overwrite this step
    reducers = schema.reducers
    for writer, update in updates:
        for key, value in update.items():
            reducer = reducers[key]
            who = writers.setdefault(key, [])
            is_overwrite = type(value) is Overwrite
            if is_overwrite and key in overwritten:
                raise InvalidUpdateError(
                    f"{overwritten[key]!r} and {writer!r} both wrote Overwrite(...) to {key!r} "
                    f"in step {step}; a field takes one Overwrite per step: overwrite it from "
                    "one node, or send plain updates through its reducer"
                )
            if reducer is last_value and who:
                raise InvalidUpdateError(
                    f"{who[0]!r} and {writer!r} both wrote {key!r} in step {step}; a field "
                    "without a reducer takes one write per step: write it from one node, or "
                    f"give it a reducer (Annotated[..., topic] or a custom one)"
                )
            if is_overwrite:
                overwritten[key] = writer
                new[key] = value.value
            elif key in overwritten:
                pass  # the Overwrite of this step wins (LangGraph's rule)
            elif reducer is last_value:
                new[key] = value
            else:
                try:
                    new[key] = reducer(schema.current_or_empty(new, key), value)
                except Exception as error:
                    # a ValueError stays one: LangGraph lets the reducer's own error through
                    kind = ReducerValueError if isinstance(error, ValueError) else (
                        InvalidUpdateError
                    )
                    raise kind(
                        f"the reducer of {key!r} refused the update from {writer!r} in step "
                        f"{step}: {type(error).__name__}: {error}"
                    ) from error
            who.append(writer)
    if len(new) > len(values):
        new = schema.in_order(new)
    return new, writers


def apply_input_writes(
    schema: Schema, values: Mapping[str, Any], writes: Sequence[tuple[str, Any]], step: int
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Apply the `__input__` writes of resume commands, one at a time: two resumes may each set
    the same plain field, and the later one simply wins."""
    new, writers = dict(values), {}
    for key, value in writes:
        if key == HELD_FOR or key == GOTO:
            continue
        new, changed = apply_updates(schema, new, [("input", {key: value})], step)
        writers.update(changed)
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
        return NO_UPDATE, []
    if isinstance(result, Command):
        # No update streams as `{node: None}`, as a node returning None does (LangGraph's).
        update = NO_UPDATE if result.update is None else schema.check_update(node, result.update)
        return update, gotos_of(result)
    return schema.check_update(node, result), []


def gotos_of(command: Command[Any]) -> list[str | Send]:
    goto = command.goto
    return [goto] if isinstance(goto, str | Send) else list(goto)


# -- pending writes: encode and decode -------------------------------------------------------


def encode_done(outcome: Outcome) -> list[tuple[str, Any]]:
    writes: list[tuple[str, Any]] = [(INTERRUPT, record) for record in outcome.raised]
    writes += (outcome.update or {}).items()
    if outcome.goto:
        writes.append((GOTO, [encode_goto(g) for g in outcome.goto]))
    if outcome.resume:
        writes.append((RESUME, list(outcome.resume)))
    writes.append((DONE, None))
    return writes


def encode_goto(target: str | Send) -> Any:
    return {"node": target.node, "arg": target.arg} if isinstance(target, Send) else target


def decode_goto(target: Any) -> str | Send:
    return Send(target["node"], target["arg"]) if isinstance(target, Mapping) else target


def encode_waiting(outcome: Outcome) -> list[tuple[str, Any]]:
    writes: list[tuple[str, Any]] = []
    if outcome.resume:
        writes.append((RESUME, list(outcome.resume)))
    if outcome.memo:
        writes.append((TASKS, list(outcome.memo)))
    it = outcome.interrupt
    if it is not None:
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
            outcome.goto = [decode_goto(g) for g in value]
        elif channel == RESUME:
            outcome.resume = list(value)
        elif channel == TASKS:
            outcome.memo = list(value)
        elif channel == ERROR:
            continue  # the failure it records is over: the task runs again
        elif channel == INTERRUPT:
            outcome.interrupt = interrupt_of(value)
            outcome.interrupt_index = value.get("index", 0)
        elif channel != PAUSED:
            update[channel] = value
    if done:
        outcome.update = update
        outcome.interrupt = None
    elif outcome.interrupt is not None and outcome.interrupt_index < len(outcome.resume):
        outcome.interrupt = None  # answered: the record stays so a fork can ask it again
    return outcome


def interrupt_of(record: Mapping[str, Any]) -> Interrupt:
    """The `Interrupt` a pending `__interrupt__` write records."""
    return Interrupt(record["id"], record["value"], record["node"])


def task_views(
    tasks: Sequence[Task], writes: Mapping[str, Sequence[tuple[str, Any]]]
) -> list[PregelTask]:
    """`StateSnapshot.tasks` of a checkpoint's `tasks` (`plan_tasks`), from their pending
    writes: each task's interrupt, its result if it finished, its error if it failed, and
    LangGraph's path (pull: a node reached by name; push: the i-th `Send`)."""
    views = []
    for task in tasks:
        path = task.path
        interrupts, error, result, done = [], None, {}, False
        for channel, value in writes.get(task.id, ()):
            if channel == INTERRUPT:
                interrupts.append(interrupt_of(value))
            elif channel == ERROR:
                error = value
            elif channel == DONE:
                done = True
            elif channel not in BOOKKEEPING:
                result[channel] = value
        views.append(PregelTask(
            task.id, task.node, tuple(interrupts), None, path, error, result if done else None
        ))
    return views


def write_order(outcome: Outcome) -> tuple[int, str, int]:
    """The order a superstep's updates go through the reducers: LangGraph's (tasks sorted by
    their path), so a fan-out's appends land in the same order on both: the nodes an edge
    or router reached by name, then `Send` tasks in the order they were sent. Not the order
    the edges were added in, nor the order the tasks finished."""
    task = outcome.task
    if task.arg is NO_ARG:
        return (0, task.node, 0)
    return (1, "", task.index)


def live_view(
    schema: Schema, head: Head, finished: Sequence[Outcome] | None = None,
    base: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """LangGraph 1.x's view of a thread's latest checkpoint whose superstep stopped half-way
    (a task waits at `interrupt()` or failed, siblings finished): the checkpoint's values
    with the finished tasks' updates applied, and the nodes still to run. None when no task
    has finished, or when their updates cannot be applied together (the superstep could not
    commit them either): the committed checkpoint is then the view. `finished` are the
    finished tasks' outcomes when the caller has them (the loop); else they are read from
    the head's pending writes; `base`, the values they started from (the checkpoint's unless
    a resume brought an update)."""
    if finished is None:
        finished = []
        for task in tasks_of(head):
            writes = head.writes.get(task.id)
            if writes:
                outcome = recover(task, writes)
                if outcome.update is not None:
                    finished.append(outcome)
    if not finished:
        return None
    done = {o.task.id for o in finished}
    ordered = sorted(finished, key=write_order)
    updates = [(o.task.node, o.update or {}) for o in ordered]
    try:
        start = head.checkpoint.values if base is None else base
        values, _ = apply_updates(schema, start, updates, head.metadata.step + 1)
    except InvalidUpdateError:
        return None
    return values, tuple(t.node for t in tasks_of(head) if t.id not in done)


def pending_interrupts(head: Head) -> list[tuple[Task, Outcome]]:
    found = []
    for task in tasks_of(head):
        writes = head.writes.get(task.id)
        if writes:
            outcome = recover(task, writes)
            if outcome.interrupt is not None and outcome.update is None:
                found.append((task, outcome))
    return found


def given_answers(head: Head) -> dict[str, tuple[Task, Any]]:
    """interrupt id -> (task, answer) for every answer recorded on `head`, whether its task
    still runs or has finished. An interrupt's id follows from its task and its position in
    the node (`interrupt_id`), so the answers list alone says which interrupts it answered."""
    given: dict[str, tuple[Task, Any]] = {}
    for task in tasks_of(head):
        for channel, value in head.writes.get(task.id, ()):
            if channel == RESUME:
                for index, answer in enumerate(value):
                    given[interrupt_id(task.id, index)] = (task, answer)
    return given


def held_updates(writes: Sequence[tuple[str, Any]]) -> list[tuple[list[tuple[str, Any]], Any]]:
    """The `__input__` writes as (update items, interrupt ids its command answered) pairs."""
    held: list[tuple[list[tuple[str, Any]], Any]] = []
    items: list[tuple[str, Any]] = []
    for channel, value in writes:
        if channel == HELD_FOR:
            held.append((items, value))
            items = []
        else:
            items.append((channel, value))
    if items:  # written before updates were marked: which command it came with is unknown
        held.append((items, None))
    return held


def raised_interrupts(tup: CheckpointTuple) -> tuple[Interrupt, ...]:
    """Every interrupt the checkpoint's tasks raised, answered since or not, in task order:
    the checkpoint as a record of its step (LangGraph 1.x's history and snapshots by id).
    `interrupts_of` is what still waits."""
    if not tup.pending_writes:
        return ()
    head = head_of(tup)
    raised = []
    for task in tasks_of(head):
        for channel, value in head.writes.get(task.id, ()):
            if channel == INTERRUPT:
                raised.append(interrupt_of(value))
    return tuple(raised)


def interrupts_of(tup: CheckpointTuple) -> tuple[Interrupt, ...]:
    if not tup.pending_writes:  # interrupts live in pending writes; most checkpoints have none
        return ()
    head = head_of(tup)
    return tuple(outcome.interrupt for _, outcome in pending_interrupts(head) if outcome.interrupt)


def head_of(tup: CheckpointTuple) -> Head:
    writes: dict[str, list[tuple[str, Any]]] = {}
    for write in tup.pending_writes:
        writes.setdefault(write.task_id, []).append((write.channel, write.value))
    return Head(tup.config, tup.checkpoint, tup.metadata, writes, parent=tup.parent_config)


def state_of(schema: Schema, head: Head) -> Any:
    if head.state is NO_ARG:
        head.state = schema.instance(head.checkpoint.values)
    return head.state


def now() -> datetime:
    return datetime.now(UTC)


def writes_metadata(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """metadata.writes: node -> update (a list of updates when a node ran several Send tasks)."""
    if len(outcomes) == 1:
        return {outcomes[0].task.node: outcomes[0].update}
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
