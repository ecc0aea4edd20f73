"""Where a call starts on a thread (the spec's invoke table): a fresh run, a new run on a
finished thread, a resume with answers to interrupts, or a fork from a past checkpoint; and
`update_state`, which writes a checkpoint as if a node had run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orchestration.checkpoint.base import (
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    new_checkpoint_id,
)
from orchestration.config import DEFAULT_RECURSION_LIMIT
from orchestration.errors import (
    AmbiguousResumeError,
    CheckpointNotFound,
    InvalidUpdateError,
    ThreadBusyError,
)
from orchestration.interrupts import INTERRUPT_ID, interrupt_id
from orchestration.pregel.effects import (
    Core,
    Get,
    PutWrites,
    RunSettings,
    put_checkpoint,
    resolve_routes,
)
from orchestration.pregel.plan import (
    BEFORE_TASK,
    DONE,
    GOTO,
    HELD_FOR,
    INPUT_TASK,
    INTERRUPT,
    RESUME,
    Head,
    Task,
    apply_input_writes,
    apply_updates,
    carry_edits,
    edits_of,
    encode_goto,
    encode_waiting,
    given_answers,
    gotos_of,
    head_of,
    held_updates,
    hold_deferred,
    new_versions,
    now,
    pending_interrupts,
    plan_next,
    plan_tasks,
    tasks_of,
)
from orchestration.state import start_updates
from orchestration.types import START, Command, Send

if TYPE_CHECKING:
    from orchestration.spec import GraphSpec


def begin(settings: RunSettings, input: Any, config: CheckpointConfig) -> Core:
    """Find where this call starts (the invoke table). Returns (head, skip_before, applied):
    `applied` when the call wrote new input (a checkpoint of its own), not when it resumes."""
    spec = settings.spec
    tup: CheckpointTuple | None = None if settings.fresh else (yield Get(config))
    forked = False
    # New input given with a checkpoint's config starts a new run on that checkpoint's state,
    # its pending tasks dropped (LangGraph's): no fork copy is needed to carry them.
    updates = None if isinstance(input, Command) else start_updates(spec.schema, spec.input, input)
    new_run = bool(updates)
    if config.checkpoint_id is not None:
        if tup is None:
            raise CheckpointNotFound(not_found_message(settings.thread_id, config.checkpoint_id))
        latest: CheckpointTuple | None = None if new_run else (
            yield Get(config.with_checkpoint_id(None))
        )
        if not new_run and (latest is None or latest.checkpoint.id != tup.checkpoint.id):
            carry = isinstance(input, Command) and input.resume is not None
            tup, input = yield from _fork(settings, tup, input if carry else None, input)
            forked = True
    head = head_of(tup) if tup is not None else None

    if isinstance(input, Command):
        if input.resume is not None:
            return (yield from _resume(settings, head, input)), True, False
        updates = spec.schema.check_update("input", input.update or {})
        goto = gotos_of(input)
    else:
        goto = []

    if head is None:
        return (yield from _write_input(settings, None, updates, goto)), False, True
    if head.checkpoint.next:
        if not updates and not goto:
            return head, BEFORE_TASK in head.writes, False
        if not forked and config.checkpoint_id is None:
            raise ThreadBusyError(_busy(settings.thread_id, head))
        if new_run:  # from START on that state; the tasks it waited to run are dropped
            return (yield from _write_input(settings, head, updates, goto)), False, True
        return (
            (yield from _write_input(settings, head, updates, goto, keep_next=True)), False, True
        )
    if not updates and not goto:
        return head, False, False  # finished, nothing new: the loop finds no task, returns
    return (yield from _write_input(settings, head, updates, goto)), False, True


def _resume(settings: RunSettings, head: Head | None, command: Command[Any]) -> Core:
    """`Command(resume=answer, update=...)`: record the answers and hold the update.

    The update is applied, like LangGraph's, to the state the resumed tasks see and committed
    with their superstep (as written by "input"); no extra checkpoint is written for it.

    Delivering the same command again is harmless (a worker that died after storing the
    answers retries it): answers the checkpoint already holds are not recorded twice, an
    update already held is not held twice, and the run continues as `invoke(None)` would.
    A different answer to an interrupt that was already answered is refused.
    """
    if head is None:
        raise CheckpointNotFound(
            f"Command(resume=...) answers a paused run, but thread {settings.thread_id!r} "
            "has never run, so nothing waits for an answer. Start it with "
            "invoke(input, config); once it pauses at interrupt(), resume it with "
            "invoke(Command(resume=answer), config) on the same thread."
        )
    update = settings.spec.schema.check_update("input", command.update or {})
    # The update and the goto are held together: both go to the superstep the answers resume.
    held = [*update.items(), *_held_goto(settings, command)]
    try:
        answers, ids = _answers(settings, head, command.resume)
    except _UnknownInterrupts as unknown:
        if unknown.everyone and (
            yield from _answered_earlier(settings, head, command.resume, held)
        ):
            return head  # the steps these answers resumed have committed: nothing to record
        raise unknown.error from None
    hold = bool(held) and _must_hold(settings, head, held, ids)
    if hold:
        _check_input(settings, head, update)
    # Answers first, the update last: a command found with all its answers stored but no held
    # update (the writer died in between) still gets its update held when delivered again.
    for task, writes in answers:
        yield PutWrites(head.config, writes, task.id, deferrable=True)
        head.writes[task.id] = writes
    if hold:
        writes = [*head.writes.get(INPUT_TASK, ()), *held, (HELD_FOR, ids)]
        yield PutWrites(head.config, writes, INPUT_TASK, deferrable=True)
        head.writes[INPUT_TASK] = writes
        head.tasks = None  # a held goto adds tasks to the superstep
    return head


def _held_goto(settings: RunSettings, command: Command[Any]) -> list[tuple[str, Any]]:
    """A resume's `goto` as the `__input__` write that holds it (none without one); a target
    that is not a node is refused before anything is written."""
    targets = gotos_of(command)
    if not targets:
        return []
    nodes = settings.spec.nodes
    unknown = [t for t in (g.node if isinstance(g, Send) else g for g in targets)
               if t not in nodes]
    if unknown:
        raise InvalidUpdateError(
            f"Command(resume=..., goto={command.goto!r}) names {unknown}, which are not "
            f"nodes of this graph (nodes: {sorted(nodes)})"
        )
    return [(GOTO, [encode_goto(g) for g in targets])]


def _check_input(settings: RunSettings, head: Head, update: Mapping[str, Any]) -> None:
    """Refuse a resume's update that the schema refuses, before anything is written."""
    writes = [*head.writes.get(INPUT_TASK, ()), *update.items()]
    schema, step = settings.spec.schema, head.metadata.step + 1
    values, writers = apply_input_writes(schema, head.checkpoint.values, writes, step)
    schema.state_from(values, writers, step)


def _must_hold(
    settings: RunSettings, head: Head, held: list[tuple[str, Any]], ids: list[str]
) -> bool:
    """False when this command's update (and goto) is already held (the command is delivered
    again)."""
    for items, held_for in held_updates(head.writes.get(INPUT_TASK, ())):
        if held_for is None or sorted(held_for) != sorted(ids):
            continue
        if _same(items, held):
            return False
        raise InvalidUpdateError(
            f"thread {settings.thread_id!r}: the answers to {ids} came with another update "
            f"({dict(items)!r:.120}), held at checkpoint {head.checkpoint.id}; the same "
            "answers cannot bring a different update. Continue the run with "
            "invoke(None, config), or update the state once it pauses again."
        )
    return True


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
    values, state = spec.schema.state_from(values, writers, 0)
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
        seen = state  # the input's step: the call's whole budget is left
        if spec.schema.managed:
            seen = spec.schema.with_managed(state, settings.recursion_limit)
        routed = yield from resolve_routes(spec, [START], seen, 0)
        next_nodes, internal = plan_next(spec, [(START, ())], seen, {}, 0, routed)
    if head is None:
        versions = {key: new_id for key in values}
        parent = CheckpointConfig(settings.thread_id, checkpoint_ns=settings.checkpoint_ns)
        step = 0
    else:
        carry_edits(head.checkpoint.internal, internal)
        versions = new_versions(head.checkpoint.versions, writers, new_id)
        parent = head.config
        step = head.metadata.step + 1
    checkpoint = Checkpoint(new_id, now(), values, versions, next_nodes, internal)
    metadata = CheckpointMetadata("input", step, {START: updates}, settings.extra)
    written_by = {k: ["input"] for k in writers}
    config = yield from put_checkpoint(parent, checkpoint, metadata, written_by)
    return Head(config, checkpoint, metadata, {}, state, parent=None if head is None else parent)


def _fork(
    settings: RunSettings, tup: CheckpointTuple, resume_input: Command[Any] | None, input: Any
) -> Core:
    """Copy a past checkpoint as the thread's new head (`source="fork"`, parent = it).

    When the caller answers interrupts of that checkpoint (`Command(resume=)`), its pending
    writes are carried over to the copy (task and interrupt ids remapped) so the answer lands."""
    source = tup.checkpoint
    copy = replace(source, id=new_checkpoint_id(), ts=now())
    metadata = CheckpointMetadata("fork", tup.metadata.step, {}, settings.extra)
    config = yield from put_checkpoint(tup.config, copy, metadata, {})
    writes: list[PendingWrite] = []
    if resume_input is not None and tup.pending_writes:
        old_head = head_of(tup)
        renamed: dict[str, str] = {}
        for old, new in zip(plan_tasks(source), plan_tasks(copy), strict=True):
            task_writes = old_head.writes.get(old.id)
            if not task_writes:
                continue
            carried = _carry(task_writes, new.id, renamed)
            yield PutWrites(config, carried, new.id)
            writes.extend(PendingWrite(new.id, channel, value) for channel, value in carried)
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


def _answers(
    settings: RunSettings, head: Head, resume: Any
) -> tuple[list[tuple[Task, list[tuple[str, Any]]]], list[str]]:
    """The `__resume__` pending writes that record `Command(resume=...)`, per waiting task
    with a new answer, and the ids of all the interrupts the command answers (new or given
    before). Raises, before anything is written, for an answer that changes a given one."""
    waiting = pending_interrupts(head)
    by_id = {o.interrupt.id: (t, o) for t, o in waiting if o.interrupt is not None}
    given = given_answers(head) if head.writes else {}
    if not by_id and not given:
        if _answers_by_id(resume, by_id, given):
            raise _UnknownInterrupts(True, _nothing_to_answer(settings, head))
        ahead = _answer_ahead(head, resume)
        if ahead is None:
            raise _nothing_to_answer(settings, head)
        return [ahead], [interrupt_id(ahead[0].id, 0)]
    if _answers_by_id(resume, by_id, given):
        unknown = [k for k in resume if k not in by_id and k not in given]
        if unknown:
            raise _UnknownInterrupts(len(unknown) == len(resume), InvalidUpdateError(
                f"thread {settings.thread_id!r} has no interrupt {unknown} at checkpoint "
                f"{head.checkpoint.id}; it waits for "
                f"{[f'{i} in {o.task.node!r}' for i, (_, o) in by_id.items()] or 'nothing'}. "
                "Read the interrupts to answer with get_state(config).interrupts"
            ))
        answers = dict(resume)
    elif len(by_id) == 1:
        answers = {next(iter(by_id)): resume}
    elif not by_id:
        # Nothing waits: a plain value can only be an answer given before, delivered again.
        same = [iid for iid, (_, answer) in given.items() if _same(answer, resume)]
        iid = same[0] if same else next(iter(given))
        answers = {iid: resume}
    else:
        raise AmbiguousResumeError(
            f"thread {settings.thread_id!r} has {len(by_id)} pending interrupts "
            f"({', '.join(f'{i} in {o.task.node!r}' for i, (_, o) in by_id.items())}); answer "
            "them by id: Command(resume={interrupt_id: answer, ...})"
        )
    out = []
    for iid, answer in answers.items():
        if iid in given:
            task, before = given[iid]
            if not _same(before, answer):
                raise InvalidUpdateError(_changed_answer(settings, head, task, iid, before, answer))
            continue
        task, outcome = by_id[iid]
        outcome.resume = [*outcome.resume, answer]
        out.append((task, encode_waiting(outcome)))
    return out, list(answers)


def _answer_ahead(head: Head, resume: Any) -> tuple[Task, list[tuple[str, Any]]] | None:
    """The answer to the first `interrupt()` of the one task about to run, when nothing waits
    yet: LangGraph's `Command(resume=...)` after `update_state` moved a paused thread to a
    new checkpoint (the task will ask again there, and gets this answer at once). None when
    no single task is about to run: the thread has finished, or several would run."""
    fresh = [task for task in tasks_of(head) if not head.writes.get(task.id)]
    if len(fresh) != 1 or len(tasks_of(head)) != 1:
        return None
    return fresh[0], [(RESUME, [resume])]


def _answers_by_id(
    resume: Any, by_id: Mapping[str, Any], given: Mapping[str, Any]
) -> bool:
    """Whether `resume` is a `{interrupt_id: answer}` mapping rather than one answer: its keys
    are all interrupt ids of this checkpoint, or all shaped like one (then unknown ones are
    refused, instead of passing the mapping as the answer to some other interrupt)."""
    if not isinstance(resume, Mapping) or not resume:
        return False
    return all(k in by_id or k in given for k in resume) or all(
        isinstance(k, str) and INTERRUPT_ID.fullmatch(k) for k in resume
    )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a value whose == refuses to answer (an array, say) is not the same
        return False


class _UnknownInterrupts(Exception):  # noqa: N818 - a signal inside this module, not an error
    """`Command(resume={id: ...})` names interrupts the head does not hold; `error` is raised
    unless they were all answered, identically, before the head (`everyone`: no id is known
    at the head)."""

    def __init__(self, everyone: bool, error: InvalidUpdateError) -> None:
        self.everyone = everyone
        self.error = error


def _answered_earlier(
    settings: RunSettings, head: Head, resume: Any, update: list[tuple[str, Any]]
) -> Core:
    """Whether every answer of `resume` was given, identically, to the checkpoint where the
    run last paused: the command was delivered, the steps after it ran and committed, and it
    arrives again (a worker that died before reporting it is retried). Walks back over the
    steps the run made since; a different answer, or an update that did not come with those
    answers, is refused."""
    current = head
    while current.metadata.source == "loop" and current.parent is not None:
        tup: CheckpointTuple | None = yield Get(current.parent)
        if tup is None:
            return False
        current = head_of(tup)
        given = given_answers(current) if current.writes else {}
        if not given:
            continue
        if not all(k in given for k in resume):
            return False
        for iid, answer in resume.items():
            task, earlier = given[iid]
            if not _same(earlier, answer):
                raise InvalidUpdateError(
                    _changed_answer(settings, current, task, iid, earlier, answer)
                )
        if update and _must_hold(settings, current, update, list(resume)):
            raise InvalidUpdateError(
                f"thread {settings.thread_id!r}: the answers to {list(resume)} were given at "
                f"checkpoint {current.checkpoint.id} without the update {dict(update)!r:.120}"
                ", and the run has moved on since. Apply it with update_state(config, values)"
            )
        return True
    return False


def _nothing_to_answer(settings: RunSettings, head: Head) -> InvalidUpdateError:
    if not head.checkpoint.next:
        return InvalidUpdateError(
            f"thread {settings.thread_id!r} has finished (checkpoint {head.checkpoint.id}); "
            "there is no interrupt to answer. Start a new run on it with invoke(input, config)"
        )
    return InvalidUpdateError(
        f"thread {settings.thread_id!r} has no pending interrupt to answer at checkpoint "
        f"{head.checkpoint.id} (next: {list(head.checkpoint.next)}); continue it with "
        "invoke(None, config)"
    )


def _changed_answer(
    settings: RunSettings, head: Head, task: Task, iid: str, before: Any, answer: Any
) -> str:
    return (
        f"interrupt {iid} of node {task.node!r} on thread {settings.thread_id!r} was already "
        f"answered with {before!r:.120} at checkpoint {head.checkpoint.id}; it cannot be "
        f"answered again with {answer!r:.120}. Continue the run with invoke(None, config) "
        "(the given answer stands), or, to answer differently, branch from that checkpoint "
        f"once the run has moved on: invoke(Command(resume=...), "
        f"config.with_checkpoint_id({head.checkpoint.id!r}))"
    )


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
    *,
    more: Sequence[tuple[Any, str | None]] = (),
) -> Core:
    """Apply `values` as if `as_node` wrote them (and each of `more`, (values, as_node), as
    if those nodes wrote them in the same superstep) and store the result as a new
    checkpoint."""
    tup: CheckpointTuple | None = yield Get(config)
    if tup is None and config.checkpoint_id is not None:
        raise CheckpointNotFound(not_found_message(config.thread_id, config.checkpoint_id))
    writes = [(_writer(spec, tup, node), given) for given, node in ((values, as_node), *more)]
    updates = [(node, spec.schema.check_update(node, given or {})) for node, given in writes]
    nodes = [node for node, _ in updates]
    base = spec.schema.initial_values() if tup is None else tup.checkpoint.values
    step = 0 if tup is None else tup.metadata.step + 1
    new_values, writers = apply_updates(spec.schema, base, updates, step)
    new_values, state = spec.schema.state_from(new_values, writers, step)
    joins = {} if tup is None else dict(tup.checkpoint.internal.get("joins", {}))
    fired = [] if tup is None else fired_joins(
        spec, tup.checkpoint.internal, tup.metadata.writes, tup.checkpoint.next
    )
    for key in fired:  # still full: their targets run next whoever the update is from
        joins[key] = list(spec.joins[int(key)][0])
    seen = state  # no call runs: routers read a full default budget
    if spec.schema.managed:
        seen = spec.schema.with_managed(state, DEFAULT_RECURSION_LIMIT)
    routed = yield from resolve_routes(spec, nodes, seen, step)
    next_nodes, internal = plan_next(spec, [(n, ()) for n in nodes], seen, joins, step, routed)
    refired = fired_joins(spec, {**internal, "fired": fired}, nodes, next_nodes)
    if refired:
        internal["fired"] = refired
    if spec.deferred:
        previous = None if tup is None else tup.checkpoint.internal
        next_nodes = hold_deferred(spec, next_nodes, internal, previous)
    if tup is not None and any(w.task_id == BEFORE_TASK for w in tup.pending_writes):
        internal["skip_before"] = True  # edited at a breakpoint: continuing runs the node
    if tup is not None:  # a step on, nothing run: task keys after it do not count it
        internal["edits"] = edits_of(tup.checkpoint.internal) + 1
    new_id = new_checkpoint_id()
    versions = (
        {k: new_id for k in new_values}
        if tup is None
        else new_versions(tup.checkpoint.versions, writers, new_id)
    )
    checkpoint = Checkpoint(new_id, now(), new_values, versions, next_nodes, internal)
    if tup is not None and config.checkpoint_ns:
        # a subgraph's checkpoint: the edit stays on the chain of the parent task it serves,
        # so that task continues from it (it looks for its chain by these marks)
        from orchestration.pregel.subgraphs import PARENT_CHECKPOINT, PARENT_KEY

        marks = {k: tup.metadata.extra[k] for k in (PARENT_KEY, PARENT_CHECKPOINT)
                 if k in tup.metadata.extra}
        extra = {**marks, **extra}
    metadata = CheckpointMetadata("update", step, _update_writes(updates), extra)
    parent = (
        CheckpointConfig(config.thread_id, checkpoint_ns=config.checkpoint_ns)
        if tup is None else tup.config
    )
    written_by: dict[str, list[str]] = {}
    for node, update in updates:
        for key in update:
            written_by.setdefault(key, []).append(node)
    return (yield from put_checkpoint(parent, checkpoint, metadata, written_by))


def _writer(spec: GraphSpec, tup: CheckpointTuple | None, as_node: str | None) -> str:
    """The node an update is written as: `as_node`, checked, or the checkpoint's writer."""
    if as_node is None:
        return _last_writer(tup)
    if as_node != START and as_node not in spec.nodes:
        raise InvalidUpdateError(
            f"update_state(as_node={as_node!r}): no such node (nodes: {sorted(spec.nodes)})"
        )
    return as_node


def _update_writes(updates: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """metadata.writes of an update: node -> its update (a list when one node wrote twice)."""
    out: dict[str, Any] = {}
    for node, update in updates:
        if node not in out:
            out[node] = update
        else:
            earlier = out[node]
            out[node] = [*(earlier if isinstance(earlier, list) else [earlier]), update]
    return out


def fired_joins(
    spec: GraphSpec, internal: Mapping[str, Any], writers: Iterable[str], next_nodes: Sequence[str]
) -> list[str]:
    """The waiting edges (`add_edge([sources], target)`) that fired into `next_nodes` and whose
    target has not run yet: every source arrived, so the plan dropped the join's record.

    LangGraph keeps such a barrier full until its target runs, so an `update_state` at that
    checkpoint, as any node, still leads to the target; the plan here forgets a join once it
    fires, so the update re-arms it. A join fired when its target is next, it has no partial
    record, and one of its sources wrote the checkpoint (or an earlier update re-armed it:
    `internal["fired"]`)."""
    pending = internal.get("joins") or {}
    armed = internal.get("fired") or ()
    wrote = set(writers)
    return [
        str(index) for index, (sources, target) in enumerate(spec.joins)
        if target in next_nodes and str(index) not in pending
        and (str(index) in armed or not wrote.isdisjoint(sources))
    ]


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
