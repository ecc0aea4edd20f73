"""The superstep loop of one `invoke`/`stream` call: run the ready tasks, save what finished,
commit their writes as one checkpoint, and stop at the end, an interrupt or a breakpoint.

It is a generator of effects (effects.py), so it never does I/O itself; where a call starts
(new input, resume, fork) is decided by entry.py before the first superstep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from orchestration.checkpoint.base import (
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    new_checkpoint_id,
)
from orchestration.errors import (
    GraphRecursionError,
    InvalidUpdateError,
    ParentCommand,
    SerializationError,
)
from orchestration.pregel.caching import run_work
from orchestration.pregel.effects import (
    Core,
    Effect,
    Emit,
    Execute,
    Put,
    PutWrites,
    RunSettings,
    resolve_routes,
    unsaved_checkpoint,
)
from orchestration.pregel.entry import begin
from orchestration.pregel.plan import (
    BEFORE_TASK,
    ERROR,
    INPUT_TASK,
    INTERRUPT,
    NO_ARG,
    PAUSED,
    RESUME,
    TASKS,
    Answers,
    Head,
    Outcome,
    Task,
    apply_input_writes,
    apply_updates,
    carry_edits,
    edits_of,
    encode_done,
    encode_waiting,
    hold_deferred,
    live_view,
    new_versions,
    plan_next,
    recover,
    state_of,
    tasks_of,
    write_order,
    writes_metadata,
)
from orchestration.pregel.streams import (
    RUN_MODES,
    checkpoint_chunks,
    interrupt_value_chunk,
    picked,
    result_chunks,
    shows,
    task_chunks,
    update_chunks,
)
from orchestration.types import START, Command

if TYPE_CHECKING:
    from orchestration.spec import GraphSpec


def run_core(settings: RunSettings, input: Any, config: CheckpointConfig) -> Core:
    """Everything `invoke` does; returns the final (or paused) state as a schema instance
    (a paused dict state also carries `"__interrupt__"`, as LangGraph's)."""
    spec = settings.spec
    head, skip_before, applied = yield from begin(settings, input, config)
    modes = settings.modes
    if modes and (head.metadata.source == "input" or tasks_of(head)):
        # LangGraph streams the state a call starts from (the input's, or the resumed one);
        # with output keys, the input's only if it set one of them.
        keys = settings.output_keys
        if "values" in modes and keys is None:
            yield Emit("values", state_of(spec.schema, head))
        elif "values" in modes and (
            head.metadata.source != "input"
            or shows(keys, (head.metadata.writes or {}).get(START) or ())
        ):
            yield Emit("values", picked(keys, head.checkpoint.values))
        if not RUN_MODES.isdisjoint(modes) and _keeps_checkpoints(settings):
            yield from checkpoint_chunks(modes, head)
    steps = 0
    allowed = _steps_allowed(settings.recursion_limit, applied and not isinstance(input, Command))
    while True:
        if steps > allowed:
            raise GraphRecursionError(_recursion_message(settings, head, steps))
        tasks = tasks_of(head)
        if not tasks:
            return state_of(spec.schema, head)
        if settings.interrupt_before and not skip_before and _stops_before(settings, head, tasks):
            yield PutWrites(head.config, [(PAUSED, _before(settings, tasks))], BEFORE_TASK)
            yield from _emit_stop(settings, head, ())
            return state_of(spec.schema, head)
        skip_before = False
        paused, head = yield from _superstep(settings, head, tasks, allowed - steps)
        if paused:
            return _paused_result(settings, head)
        steps += 1
        if (
            settings.interrupt_after
            and head.checkpoint.next
            and settings.interrupt_after.intersection(t.node for t in tasks)
        ):
            yield from _emit_stop(settings, head, ())
            return state_of(spec.schema, head)


def _steps_allowed(recursion_limit: int, new_input: bool) -> int:
    """The most supersteps a call may run and still return, counted as LangGraph counts
    them, so a program stops where it stopped there: a call with new input spends one step
    of the limit on the input (LangGraph's `__start__` task); a resume (a `Command`, or
    `None` on a thread that ran) gets one spare. The count is checked at the top of each
    round, before the call looks for work: one superstep more raises `GraphRecursionError`
    even if the graph has then finished, as LangGraph's does. `recursion_limit=3`: new input
    may run two supersteps, a resume four."""
    return recursion_limit - 1 if new_input else recursion_limit + 1


def _recursion_message(settings: RunSettings, head: Head, steps: int) -> str:
    left = list(head.checkpoint.next)
    what = (
        f"the call ran {steps} supersteps and reached recursion_limit="
        f"{settings.recursion_limit} (counted as LangGraph counts it: new input spends one "
        "step, a resume gets one spare), "
        + (f"before {left}" if left else "after the graph's last step")
    )
    if settings.context is not None and not settings.context.durable:
        # Without a saver nothing was kept: advising a resume would mislead.
        return (
            f"{what}. Nothing was saved (the graph has no checkpoint saver): run it again "
            "with a higher limit, invoke(input, {\"recursion_limit\": <higher>}), or fix the "
            "loop in the graph (a route that never reaches END)."
        )
    return (
        f"thread {settings.thread_id!r}: {what}; it stopped at checkpoint "
        f"{head.checkpoint.id}. Resume it with invoke(None, config, recursion_limit=<higher>) "
        "or fix the loop in the graph (a route that never reaches END)."
    )


def _paused_result(settings: RunSettings, head: Head) -> Any:
    state = head.state
    if head.interrupts and settings.spec.schema.kind == "typeddict":
        return {**state, INTERRUPT: list(head.interrupts)}
    return state


def _before(settings: RunSettings, tasks: Sequence[Task]) -> list[str]:
    return [t.node for t in tasks if t.node in settings.interrupt_before]


def _stops_before(settings: RunSettings, head: Head, tasks: Sequence[Task]) -> bool:
    # A superstep that already started (pending writes) never stops before its tasks again.
    if head.writes or head.checkpoint.internal.get("skip_before"):
        return False
    return bool(_before(settings, tasks))


def _emit_stop(settings: RunSettings, head: Head, interrupts: tuple[Any, ...]) -> Core:
    """Like LangGraph, a paused stream ends with `{"__interrupt__": (Interrupt, ...)}` (empty
    for a breakpoint), so a consumer of `updates` sees why it stopped; `values` ends with
    the state and the interrupts (dict states, when something asked)."""
    if "updates" in settings.modes:
        yield Emit("updates", {INTERRUPT: interrupts})
    if interrupts and "values" in settings.modes and settings.spec.schema.kind == "typeddict":
        yield interrupt_value_chunk(head.checkpoint.values, interrupts, settings.output_keys)


def _superstep(settings: RunSettings, head: Head, tasks: list[Task], remaining: int) -> Core:
    """Run one superstep from `head`, the call allowed `remaining` more (what a managed
    `RemainingSteps` field reads). Returns (paused, head); a paused head's `state` is what
    the tasks saw, a committed one is the new checkpoint."""
    spec = settings.spec
    step = head.metadata.step + 1
    if head.writes:
        done, values, input_writers, state = yield from _run_resumed(
            settings, head, tasks, step, remaining
        )
    else:
        # Nothing ran from this checkpoint yet (the usual case): run every task afresh.
        values, input_writers, state = head.checkpoint.values, {}, state_of(spec.schema, head)
        seen = spec.schema.with_managed(state, remaining) if spec.schema.managed else state
        if spec.reads:
            work = [(t, _task_input(spec, t, seen, values), []) for t in tasks]
        else:
            work = [(t, seen if t.arg is NO_ARG else t.arg, []) for t in tasks]
        if settings.modes and not RUN_MODES.isdisjoint(settings.modes):
            yield from task_chunks(settings.modes, work, step)
        if settings.cache is None:  # the usual case: no generator to delegate to
            done = yield Execute(spec, work, settings.thread_id, step, settings.context,
                                 edits_of(head.checkpoint.internal))
        else:
            done = yield from run_work(settings, work, step, edits_of(head.checkpoint.internal))
    if settings.modes and not RUN_MODES.isdisjoint(settings.modes):
        yield from result_chunks(settings.modes, done, step)
    for outcome in done:
        if outcome.error is not None or outcome.interrupt is not None:
            return (yield from _stop(settings, head, done, state, values, step))
    try:
        new_head = yield from _commit(
            settings, head, done, step, values, input_writers, remaining
        )
    except Exception as error:
        if not isinstance(error, InvalidUpdateError) and not getattr(
            error, "stepwise_router", False
        ):
            raise
        # The tasks all ran: keep their writes so a resume only re-plans; a node whose update
        # the schema refused is not kept, so it runs again once fixed.
        culprits = set(getattr(error, "writers", ()))
        yield from _fail(head, [o for o in done if o.task.node not in culprits], error)
    return False, new_head


def _task_input(spec: GraphSpec, task: Task, state: Any, values: Mapping[str, Any]) -> Any:
    """A task's argument: its Send's, else the state as its node reads it."""
    if task.arg is not NO_ARG:
        return task.arg
    return spec.node_input(task.node, state, values)


def _run_resumed(
    settings: RunSettings, head: Head, tasks: list[Task], step: int, remaining: int
) -> Core:
    """Run a superstep that started before: tasks with pending writes are recovered from them
    (finished, or still waiting for an answer) and the others run, with any answers so far.
    Returns (outcomes in task order, base values, input writers, state)."""
    spec = settings.spec
    if INPUT_TASK in head.writes:
        values, input_writers, state = _resumed_input(settings, head, step)
    else:
        values, input_writers, state = head.checkpoint.values, {}, state_of(spec.schema, head)
    seen = spec.schema.with_managed(state, remaining) if spec.schema.managed else state
    outcomes: list[Outcome | None] = [None] * len(tasks)
    work: list[tuple[Task, Any, list[Any]]] = []
    slots: list[int] = []
    raised: dict[int, list[Any]] = {}
    for i, task in enumerate(tasks):
        resume: list[Any] = []
        writes = head.writes.get(task.id)
        if writes:
            recovered = recover(task, writes)
            if recovered.update is not None or recovered.interrupt is not None:
                outcomes[i] = recovered  # finished earlier, or still waiting for an answer
                continue
            resume = Answers(recovered.resume, recovered.memo) if recovered.memo else (
                recovered.resume
            )
            raised[i] = [record for channel, record in writes if channel == INTERRUPT][-1:]
        work.append((task, _task_input(spec, task, seen, values), resume))
        slots.append(i)
    if work:
        if settings.modes and not RUN_MODES.isdisjoint(settings.modes):
            yield from task_chunks(settings.modes, work, step)
        results: list[Outcome] = yield from run_work(
            settings, work, step, edits_of(head.checkpoint.internal))
        for i, outcome in zip(slots, results, strict=True):
            outcome.raised = raised.get(i, [])
            outcomes[i] = outcome
    done = [o for o in outcomes if o is not None]
    return done, values, input_writers, state


def _stop(
    settings: RunSettings, head: Head, done: list[Outcome], state: Any,
    values: Mapping[str, Any], step: int,
) -> Core:
    """A task failed (raise, after saving what its siblings wrote) or waits for an answer
    (save the writes, pause): returns (True, head) with the state to return: the tasks'
    state with the finished tasks' updates applied (LangGraph's live view, `live_view`)."""
    for outcome in done:
        if type(outcome.error) is ParentCommand:
            # A hand-off to the parent graph ends this (sub)graph's run here, this superstep
            # unsaved, as in LangGraph: the parent's task applies the command instead.
            raise outcome.error
    failed = [o for o in done if o.error is not None]
    if failed:
        yield from _fail(head, done, _failure(settings, head, failed[0], step))
    waiting = [o for o in done if o.interrupt is not None]
    yield from _save_fresh(head, done)
    head.interrupts = tuple(o.interrupt for o in waiting if o.interrupt)
    yield from _emit_stop(settings, head, head.interrupts)
    head.state = state
    finished = [o for o in done if o.update is not None and o.error is None]
    live = live_view(settings.spec.schema, head, finished, values) if finished else None
    if live is not None:
        with contextlib.suppress(InvalidUpdateError):  # a schema refusal shows at the commit
            head.state = settings.spec.schema.instance(live[0])
    return True, head


def _resumed_input(
    settings: RunSettings, head: Head, step: int
) -> tuple[Any, dict[str, list[str]], Any]:
    """The values a resumed step starts from: the checkpoint's, plus the update of a
    `Command(update=..., resume=...)` waiting under the `__input__` task."""
    schema = settings.spec.schema
    input_writes = head.writes[INPUT_TASK]
    values, writers = apply_input_writes(schema, head.checkpoint.values, input_writes, step)
    values, state = schema.state_from(values, writers, step)
    return values, writers, state


def _failure(settings: RunSettings, head: Head, outcome: Outcome, step: int) -> BaseException:
    """The node's own exception (LangGraph raises it as itself, so `except KeyError:` in the
    caller works), with a note saying where it happened and how to continue."""
    error = outcome.error
    assert error is not None
    if isinstance(error, InvalidUpdateError):
        return error
    where = f"during node {outcome.task.node!r} in step {step}"
    if settings.context is None or settings.context.durable:
        where += (
            f" of thread {settings.thread_id!r}, from checkpoint {head.checkpoint.id}; the "
            "thread keeps the work of the tasks that finished: fix the cause and resume with "
            "invoke(None, config)"
        )
    error.add_note(where)
    return error


def _fail(
    head: Head, outcomes: Sequence[Outcome], error: BaseException
) -> Generator[Effect, Any, NoReturn]:
    """Save what the finished siblings wrote, then raise `error`. A sibling whose writes cannot
    be stored does not hide the failure: it is noted on `error` and simply runs again."""
    for outcome in outcomes:
        if outcome.error is not None and outcome.fresh:
            yield from _record_failure(head, outcome, error)
        try:
            yield from _save_fresh(head, [outcome])
        except SerializationError as unsaved:
            error.__context__ = error.__context__ or unsaved
            error.add_note(
                f"also: the writes of {outcome.task.node!r} were not saved ({unsaved}); it will "
                "run again when the thread resumes"
            )
    raise error


def _record_failure(head: Head, outcome: Outcome, error: BaseException) -> Core:
    """How the task failed, for `get_state(config).tasks` (LangGraph keeps it too); a failed
    entrypoint also keeps its finished @task results, so the resume after the fix does not
    call them again (LangGraph keeps them as task writes). A task's writes replace its
    earlier ones, so a resumed task keeps here the question it asked and the answers it got,
    or a resume would ask again. Best effort: when the database is what failed, this write
    fails too, and the caller must still get the task's own error."""
    failed: list[tuple[str, Any]] = [(INTERRUPT, record) for record in outcome.raised]
    if outcome.resume:
        failed.append((RESUME, list(outcome.resume)))
    failed.append((ERROR, repr(outcome.error)))
    if outcome.memo:
        failed.append((TASKS, list(outcome.memo)))
    try:
        yield PutWrites(head.config, failed, outcome.task.id)
    except Exception as unsaved:  # noqa: BLE001 - noted on the error the caller gets
        error.add_note(f"also: the record of this failure was not saved ({unsaved!r:.200})")


def _save_fresh(head: Head, outcomes: Sequence[Outcome]) -> Core:
    for o in outcomes:
        if not o.fresh or o.error is not None:
            continue
        writes = encode_done(o) if o.update is not None else encode_waiting(o)
        try:
            yield PutWrites(head.config, writes, o.task.id)
        except SerializationError as error:
            update = o.update
            step = head.metadata.step + 1
            if update is None and o.interrupt is not None:
                # The storage layer speaks of channels and tasks; the user wrote interrupt(x).
                message = (
                    f"node {o.task.node!r} called interrupt() in step {step} with "
                    f"{o.interrupt.value!r:.80}, a {type(o.interrupt.value).__name__}, which "
                    "cannot be stored, so the pause could not be saved. Pass interrupt() "
                    "JSON-like data (dicts, lists, strings, numbers), dates, Decimal, UUID, or "
                    "a registered dataclass / pydantic model. The thread is unchanged."
                )
            else:
                message = (
                    f"{error} (in its update, node {o.task.node!r}, step {step}). "
                    "The thread is unchanged: make the node use storable values and run it "
                    "again."
                )
            raise SerializationError(
                message,
                field=error.field if update is not None and error.field in update else None,
                nodes=[o.task.node],
                step=step,
            ) from error


def _keep_finished(head: Head, outcomes: Sequence[Outcome]) -> Core:
    """The saver failed to store the step's checkpoint although every task finished: keep
    their writes on `head` if it still takes them, so that resuming (or delivering the same
    answer again) recovers those tasks instead of running their nodes a second time. The
    saver's own failure is what the caller sees; a failure here changes nothing."""
    for outcome in outcomes:
        if not outcome.fresh:
            continue
        try:
            yield PutWrites(head.config, encode_done(outcome), outcome.task.id)
        except Exception:
            return


def _commit(
    settings: RunSettings,
    head: Head,
    outcomes: list[Outcome],
    step: int,
    base: Any,
    input_writers: dict[str, list[str]],
    remaining: int,
) -> Core:
    spec = settings.spec
    schema = spec.schema
    ordered = sorted(outcomes, key=write_order) if len(outcomes) > 1 else outcomes
    updates = [(o.task.node, o.update or {}) for o in ordered]
    values, writers = apply_updates(schema, base, updates, step)
    values, state = schema.state_from(values, writers, step)
    for key, who in input_writers.items():
        writers[key] = [*who, *writers.get(key, ())]
    routed = None
    # routers read what the step's nodes read
    seen = schema.with_managed(state, remaining) if schema.managed else state
    if spec.async_router_sources:
        nodes = [o.task.node for o in outcomes]
        routed = yield from resolve_routes(spec, nodes, seen, step)
    finished = [(o.task.node, o.goto) for o in outcomes]
    joins = head.checkpoint.internal.get("joins") if head.checkpoint.internal else None
    next_nodes, internal = plan_next(spec, finished, seen, joins or {}, step, routed)
    carry_edits(head.checkpoint.internal, internal)
    if spec.deferred:
        next_nodes = hold_deferred(spec, next_nodes, internal, head.checkpoint.internal)
    new_id = new_checkpoint_id()
    versions = new_versions(head.checkpoint.versions, writers, new_id)
    checkpoint = Checkpoint(new_id, datetime.now(UTC), values, versions, next_nodes, internal)
    writes_meta = writes_metadata(outcomes)
    metadata = CheckpointMetadata("loop", step, writes_meta, settings.extra)
    try:
        config = yield Put(head.config, checkpoint, metadata)
    except SerializationError as error:
        raise unsaved_checkpoint(error, metadata, writers) from error
    except Exception:
        yield from _keep_finished(head, outcomes)
        raise
    new_head = Head(config, checkpoint, metadata, {}, state, parent=head.config)
    if settings.modes:
        keys = settings.output_keys
        if "updates" in settings.modes:
            yield from update_chunks(outcomes, keys)
        if "values" in settings.modes and writers and shows(keys, writers):
            # As LangGraph: a step that changed no field (no field shown) streams no values.
            yield Emit("values", state if keys is None else picked(keys, values))
        if not RUN_MODES.isdisjoint(settings.modes) and _keeps_checkpoints(settings):
            yield from checkpoint_chunks(settings.modes, new_head)
    return new_head


def _keeps_checkpoints(settings: RunSettings) -> bool:
    """Whether the call keeps checkpoints to stream: a graph compiled without a saver keeps
    none (its steps pass through a private memory saver), so, as in LangGraph, its
    `checkpoints` and `debug` streams carry no checkpoint events."""
    return settings.context is None or settings.context.durable
