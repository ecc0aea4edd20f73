"""Start, resume, fork, retry, cancel and un-stall runs: the web app's only way to make a
thread move.

Each action changes rows inside `transaction.atomic`, records an `Event` (who, why), and
enqueues `orchestration.runtime.tasks.execute_run` in the same transaction when the Tasks
backend keeps its tasks in our database (django-tasks-db): the run and the task that will
execute it commit together or not at all, so no crash can leave a queued run that no worker
will pick up. Other backends are sent the task on commit; `requeue_orphan` (run by the
`resume_stalled` sweeper) repairs a queued run whose task was lost anyway.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django_tasks_db import DatabaseBackend

from orchestration.errors import InvalidUpdateError
from orchestration.runtime import metrics, registry, runqueue, taskrow
from orchestration.runtime.errors import (
    InvalidRunInput,
    RunError,
    RunNotCancellable,
    RunNotRetryable,
    RunNotStalled,
    ThreadExists,
    ThreadHasActiveRun,
    ThreadNotResumable,
    UnknownCheckpoint,
    UnknownGraph,
    WorkerLost,
)
from orchestration.runtime.events import publish
from orchestration.runtime.inputs import InputError, RunInput
from orchestration.runtime.leases import is_orphaned, queued_again, revoke_expired_lease
from orchestration.runtime.models import Checkpoint, Event, Run, Thread
from orchestration.runtime.signals import run_stalled
from orchestration.runtime.tasks import execute_run
from orchestration.runtime.titles import title_from_input
from orchestration.state import start_updates

# The errors were defined here before the runtime had one error tree: still importable here.
__all__ = [
    "InvalidRunInput", "RunError", "RunNotCancellable", "RunNotRetryable", "RunNotStalled",
    "ThreadExists", "ThreadHasActiveRun", "ThreadNotResumable", "UnknownCheckpoint",
    "UnknownGraph", "RunAction", "WorkerLost", "answer_thread", "cancel_run", "declare_stalled",
    "finish_lost_task", "fork_thread",
    "requeue_orphan", "resume_stalled", "resume_thread", "retry_run", "run_inline",
    "start_thread",
]

logger = logging.getLogger(__name__)


class RunAction(models.TextChoices):
    """What ops can do to a run, from the console or in bulk: the one list of them."""

    RESUME = "resume", "Resume (stalled or lost)"
    RETRY = "retry", "Retry (failed)"
    CANCEL = "cancel", "Cancel"


# ---------------------------------------------------------------------------------------
# Actions


def start_thread(
    graph_name: str, input: Any, *, user: Any, title: str = "", thread_id: str | None = None,
    savepoint: bool = True,
) -> Run:
    """Create a thread of `graph_name` and queue its first run with `input`.

    Without a `title`, the thread is titled from its input (`titles.title_from_input`).

    `savepoint=False`: inside the caller's transaction, no savepoint of its own, for a caller
    whose own atomic block every error leaves (the API's: two statements fewer)."""
    _check_start_input(graph_name, input)
    title = title or title_from_input(input)
    payload = _encode(RunInput.start(input))
    actor = _user_or_none(user)
    with _one_active_run(thread_id or "new thread"), transaction.atomic(savepoint=savepoint):
        thread = Thread(
            thread_id=thread_id or uuid.uuid4().hex,
            graph_name=graph_name,
            title=title,
            status=Thread.Status.RUNNING,
            started_by=actor,
        )
        # a new thread: no run of it to look for, no paused run or status to move
        run = Run(thread=thread, kind=Run.Kind.START, input=payload, requested_by=actor,
                  reason="")
        task = _new_task(run)
        runqueue.insert_thread_and_run(thread, run, actor=actor, reason="",
                                       data={"kind": Run.Kind.START}, task=task)
        _enqueue(run, task)
    return run


def resume_thread(thread: Thread, command: Any | None, *, user: Any, reason: str = "") -> Run:
    """Queue a run continuing `thread` from its latest checkpoint: `command` answers its
    interrupts (`Command(resume=...)`); `None` re-runs whatever is pending. Reviewers'
    answers go through `answer_thread`, which never refuses for a busy thread."""
    _check_resumable(thread)
    try:
        payload = _encode(RunInput.from_command(command))
    except InputError as exc:
        raise InvalidRunInput(str(exc)) from exc
    with _one_active_run(thread.thread_id), transaction.atomic():
        run = _create_run(
            thread, Run.Kind.RESUME, user=user, reason=reason, input=payload,
            previous=_latest_run(thread),
        )
    return run


def answer_thread(
    thread: Thread, answers: Mapping[str, Any], *, user: Any, reason: str = "",
    savepoint: bool = True,
) -> Run:
    """Deliver answers to interrupts of `thread` (interrupt id -> answer); returns the run that
    carries them into the engine.

    Any open interrupt can be answered at any time. With no active run, a resume run is
    queued. A queued, running or stalled run takes the answers into its input: a queued or
    stalled one delivers them when it (re)starts, a running one before it records its pause
    (see `tasks.RunExecution`), so none is lost and the thread resumes once per answer at
    most. The active run's row is locked first, so two answers never overwrite each other
    and a worker finishing the run sees every answer committed before it paused.

    Most often no run is active: the resume run is inserted unless one is, by one statement
    (`runqueue.insert_run_unless_active`), which neither reads first nor needs a savepoint
    against a concurrent answer's run (it writes nothing when one was committed first).
    Only then is the active run locked and the answers added to it.

    `savepoint=False`: inside the caller's transaction, no savepoint of its own; for a caller
    whose own atomic block rolls back everything this does when it raises, and which lets
    every error leave that block (a decision: two statements fewer).
    """
    _check_resumable(thread)
    if not answers:
        raise InvalidRunInput("answer_thread needs at least one answer (interrupt id -> answer)")
    with _one_active_run(thread.thread_id), transaction.atomic(savepoint=savepoint):
        for _attempt in range(2):
            # Most often the thread waits for this answer: the resume run is inserted at
            # once, unless a run is active (a concurrent answer's committed first, or one
            # still running): nothing is written then, and the answers join that run.
            run = _queue_answers(thread, answers, user=user, reason=reason)
            if run is not None:
                return run
            active = _lock_active_run(thread)
            if active is not None:
                return _add_answers(active, answers, user=user, reason=reason)
            # the active run ended between the insert and the lock: queue one again
        # active again and ended again meanwhile: the caller retries as on a conflict
        raise IntegrityError("run_one_active_per_thread")


def _queue_answers(thread: Thread, answers: Mapping[str, Any], *, user: Any,
                   reason: str) -> Run | None:
    """The resume run carrying `answers`, queued after the thread's latest run; None (and
    nothing written) if the thread has an active run."""
    actor = _user_or_none(user)
    run = Run(thread=thread, kind=Run.Kind.RESUME, input=_encode(RunInput.resume_with(answers)),
              requested_by=actor, reason=reason)
    task = _new_task(run)
    if not runqueue.insert_run_unless_active(run, thread, actor=actor, reason=reason,
                                             data={"kind": Run.Kind.RESUME}, task=task):
        return None
    thread.status = Thread.Status.RUNNING
    _enqueue(run, task)
    return run


def _lock_active_run(thread: Thread) -> Run | None:
    # FOR UPDATE locks the row on PostgreSQL; SQLite's IMMEDIATE transactions already
    # serialize writers, so the read-merge-write in `_add_answers` cannot interleave there.
    return runqueue.lock_active_run(thread)


def _add_answers(run: Run, answers: Mapping[str, Any], *, user: Any, reason: str) -> Run:
    merged = RunInput.decode(run.input).with_answers(answers)
    run.input = _encode(merged)
    Run.objects.filter(pk=run.pk).update(input=run.input)
    publish(
        "run_answers_added", run=run, thread=run.thread, actor=_user_or_none(user),
        reason=reason, data={"interrupts": sorted(answers)},
    )
    return run


def fork_thread(
    thread: Thread,
    checkpoint_id: str,
    values: dict[str, Any] | None,
    *,
    user: Any,
    reason: str,
    as_node: str | None = None,
) -> Run:
    """Queue a run that branches `thread` at `checkpoint_id`, applying `values` first (as if
    written by `as_node`). Earlier checkpoints are never changed."""
    if not Checkpoint.objects.filter(
        thread=thread, checkpoint_id=checkpoint_id, checkpoint_ns=""
    ).exists():
        raise UnknownCheckpoint(
            f"thread {thread.thread_id} has no checkpoint {checkpoint_id!r}; pick one from "
            "the thread's history",
            thread_id=thread.thread_id, checkpoint_id=checkpoint_id,
        )
    payload = _encode(RunInput.fork(values))
    with _one_active_run(thread.thread_id), transaction.atomic():
        run = _create_run(
            thread, Run.Kind.FORK, user=user, reason=reason, input=payload,
            previous=_latest_run(thread), from_checkpoint_id=checkpoint_id,
            as_node=as_node or "",
        )
    return run


def retry_run(run: Run, *, user: Any, reason: str) -> Run:
    """Queue a new run of a failed run's thread: it re-runs only the task that failed, and
    carries the failed run's answers (those the engine never stored are delivered)."""
    if run.status == Run.Status.QUEUED and is_orphaned(run):
        return requeue_orphan(run, user=user, reason=reason)
    if run.status != Run.Status.FAILED:
        hint = " (resume stalled runs instead)" if run.status == Run.Status.STALLED else ""
        raise RunNotRetryable(
            f"run {run.pk} is {run.get_status_display().lower()}, only failed runs can be "
            f"retried{hint}",
            run_id=run.pk, thread_id=run.thread.thread_id, status=run.status,
        )
    latest = _latest_run(run.thread)
    if latest is not None and latest.pk != run.pk:
        raise RunNotRetryable(
            f"run {run.pk} is not the latest run of thread {run.thread.thread_id} "
            f"(run {latest.pk} is); retry that one or fork the thread",
            run_id=run.pk, thread_id=run.thread.thread_id, status=run.status,
        )
    payload = _encode(RunInput.resume_with(RunInput.decode(run.input).answers))
    if not Checkpoint.objects.filter(thread=run.thread, checkpoint_ns="").exists():
        # A retry continues from the thread's last checkpoint. With none, the engine would
        # start the graph from its defaults, running every node, side effects included, on an
        # empty state (found in an ops trial, after retention pruned a failed thread). A start
        # that failed before its first checkpoint starts again with its own input; anything
        # else has nothing to continue from.
        pruned = Event.objects.filter(thread=run.thread, kind="thread_pruned").exists()
        if pruned or run.kind != Run.Kind.START:
            raise RunNotRetryable(
                f"run {run.pk} cannot be retried: thread {run.thread.thread_id} has no "
                "checkpoint to continue from"
                + (" (retention pruned its checkpoints; its export, if one was written, holds "
                   "them)" if pruned else "")
                + ". Start a new thread with the input it needs instead.",
                run_id=run.pk, thread_id=run.thread.thread_id, status=run.status,
            )
        payload = run.input
    with _one_active_run(run.thread.thread_id), transaction.atomic():
        new = _create_run(
            run.thread, Run.Kind.RETRY, user=user, reason=reason, input=payload,
            previous=run,
        )
    return new


def cancel_run(run: Run, *, user: Any, reason: str) -> Run:
    """Stop a queued, running, stalled or waiting run. A running worker notices at its next
    checkpoint write (its fence fails) and writes nothing more."""
    cancellable = [*Run.ACTIVE, Run.Status.WAITING]
    now = timezone.now()
    with transaction.atomic():
        # locked: a stalled run's task row belongs to a worker that is gone (finish it below);
        # a running one's worker is alive and finishes its own row
        before = Run.objects.select_for_update().filter(pk=run.pk).values_list(
            "status", "task_result_id").first()
        changed = Run.objects.filter(pk=run.pk, status__in=cancellable).update(
            status=Run.Status.CANCELLED, lease_token="", lease_expires_at=None, finished_at=now
        )
        if not changed:
            run.refresh_from_db(fields=["status"])
            raise RunNotCancellable(
                f"run {run.pk} is already {run.get_status_display().lower()}; nothing to cancel",
                run_id=run.pk, thread_id=run.thread.thread_id, status=run.status,
            )
        Thread.objects.filter(pk=run.thread_id).update(
            status=Thread.Status.CANCELLED, updated_at=now
        )
        run.refresh_from_db()
        if before is not None and before[0] == Run.Status.STALLED:
            finish_lost_task(before[1], "run cancelled")
        publish("run_cancelled", run=run, actor=_user_or_none(user), reason=reason)
    return run


def resume_stalled(run: Run, *, user: Any = None, reason: str) -> Run:
    """Re-queue a run whose worker stopped renewing its lease. A running run whose lease has
    expired is first marked stalled; the next worker continues from its last checkpoint.
    A queued run that no task will ever pick up (see `requeue_orphan`) is queued again."""
    if run.status == Run.Status.QUEUED and is_orphaned(run):
        return requeue_orphan(run, user=user, reason=reason)
    with transaction.atomic():
        if run.status == Run.Status.RUNNING:
            declare_stalled(run, user=user, reason=reason)
        # locked: of concurrent resumes (six at once in an API trial) one queues the run, the
        # others find it queued and are refused
        Run.objects.select_for_update().filter(pk=run.pk).values_list("pk").first()
        run.refresh_from_db()
        if run.status != Run.Status.STALLED:
            raise RunNotStalled(
                f"run {run.pk} is {run.get_status_display().lower()}, not stalled"
                + (" (its lease has not expired yet)" if run.status == Run.Status.RUNNING else ""),
                run_id=run.pk, thread_id=run.thread.thread_id, status=run.status,
            )
        publish("run_requeued", run=run, actor=_user_or_none(user), reason=reason)
        _enqueue(run)
        queued_again(run)
    return run



def requeue_orphan(
    run: Run, *, user: Any = None, reason: str, grace: float | None = None
) -> Run:
    """Enqueue a task again for a queued run that no task will pick up (its task was never
    stored: a process died between the run's commit and a backend's on-commit send, or the
    task row was lost). Delivering a run twice is harmless: only one worker claims it."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().filter(pk=run.pk).first()
        if locked is None or locked.status != Run.Status.QUEUED or not is_orphaned(
            locked, grace=grace
        ):
            status = locked.get_status_display().lower() if locked else "gone"
            raise RunNotStalled(
                f"run {run.pk} is {status} and not waiting for a lost task: nothing to requeue",
                run_id=run.pk, thread_id=run.thread.thread_id, status=status,
            )
        publish("run_requeued", run=locked, actor=_user_or_none(user), reason=reason,
                data={"orphaned": True})
        _enqueue(locked)
    run.refresh_from_db()
    return run


def declare_stalled(run: Run, *, user: Any = None, reason: str, older_than: float = 0.0,
                    notify: bool = True) -> bool:
    """Running -> stalled if its lease expired (`leases.revoke_expired_lease`), and say so: the
    thread becomes stalled, a `run_stalled` event is recorded and the signal sent. False if
    the lease had not expired (or the run ended) meanwhile. `notify=False` records the event
    but sends no signal: the sweeper's stall policy (`healing`) will resume the run itself
    and sends the signal only if it gives up, so ops hear of stalls that need them."""
    with transaction.atomic():
        if not revoke_expired_lease(run.pk, older_than=older_than):
            return False
        Thread.objects.filter(pk=run.thread_id).update(
            status=Thread.Status.STALLED, updated_at=timezone.now()
        )
        run.refresh_from_db()
        publish(
            "run_stalled", run=run, actor=_user_or_none(user), reason=reason,
            data={"worker": run.worker, "attempts": run.attempts},
        )
        if notify:
            run_stalled.send(sender=Run, run=run, needs_ops=False)
        transaction.on_commit(metrics.RUNS_STALLED.inc)
    return True


# ---------------------------------------------------------------------------------------
# Queueing


_inline = threading.local()


@contextmanager
def run_inline() -> Iterator[None]:
    """Execute runs queued inside this block in this process, right after their commit,
    instead of enqueueing them (seed data, scripts, tests that need no worker)."""
    previous = getattr(_inline, "on", False)
    _inline.on = True
    try:
        yield
    finally:
        _inline.on = previous


def _new_task(run: Run) -> taskrow.RunTask | None:
    """For a run about to be inserted whose task row commits with it (`_enqueue`): that row,
    its id made the run's `task_result_id` now, so the run's insert writes it (no update of
    the new run) and, on PostgreSQL, the run's statement inserts the task row too."""
    if getattr(_inline, "on", False) or not _tasks_share_our_transaction():
        return None
    task = taskrow.new_run_task(execute_run)
    if task is not None:
        run.task_result_id = task.result_id
    return task


def _enqueue(run: Run, task: taskrow.RunTask | None = None) -> None:
    """Hand `run` to a worker. Called inside the transaction that queued it; `task`
    (`_new_task`), written with the run already: nothing more to do."""
    if task is not None and task.written:
        return
    run_id = run.pk
    if getattr(_inline, "on", False):
        transaction.on_commit(lambda: execute_run.call(run_id))
    elif _tasks_share_our_transaction():
        # The task row commits with the run (or neither does): no window in which a crash
        # leaves a queued run without a task. The worker cannot see either before commit.
        result_id = _send_to_worker(run_id)
        # A run queued again (stalled, lost) leaves the task of the worker that lost it
        # RUNNING forever: nothing else will finish it. Finished here, with the new task.
        if run.task_result_id != result_id:
            finish_lost_task(run.task_result_id, f"run requeued as task {result_id}")
    else:
        transaction.on_commit(lambda: _send_to_worker(run_id))


def _send_to_worker(run_id: int) -> str:
    return taskrow.enqueue_run(execute_run, run_id)


def finish_lost_task(task_id: str, outcome: str) -> bool:
    """Mark the django-tasks-db row `task_id` FAILED with a `WorkerLost` error ("worker lost;
    <outcome>") if it is still RUNNING (its worker died and the run was queued again or given
    up on: `outcome` says which), so the task table, the ops console and the metrics show no
    phantom running task. django-tasks-db has no API for a lost worker: it finishes a row
    only from the worker that ran it (`DBTaskResult.set_failed`, unconditional). This is the
    same write made conditional, so a row that its worker finished meanwhile keeps its result
    (and if a worker thought lost finishes later, its own result overwrites this one)."""
    if not task_id:
        return False
    from orchestration.runtime.leases import EXECUTE_RUN_PATH
    from orchestration.runtime.lost_tasks import mark_lost

    try:
        pk = uuid.UUID(task_id)
    except ValueError:  # another backend's id: not a row of ours
        return False
    return mark_lost(pk, outcome, task_path=EXECUTE_RUN_PATH)


def _tasks_share_our_transaction() -> bool:
    return isinstance(execute_run.get_backend(), DatabaseBackend)


# ---------------------------------------------------------------------------------------
# Helpers


def _create_run(thread: Thread, kind: str, *, user: Any, reason: str, input: bytes,
                previous: Run | None = None, **fields: Any) -> Run:
    """Queue a run of `thread` after `previous`. The one-active-run constraint refuses a run
    committed meanwhile. The run, the moves and its event: `runqueue.insert_run`."""
    if Run.objects.filter(thread=thread, status__in=Run.ACTIVE).exists():
        raise IntegrityError("run_one_active_per_thread")
    actor = _user_or_none(user)
    run = Run(thread=thread, kind=kind, input=input, requested_by=actor, reason=reason,
              **fields)
    run.previous = previous
    task = _new_task(run)
    runqueue.insert_run(run, thread, new_thread=False, actor=actor, reason=reason,
                        data={"kind": kind}, task=task)
    thread.status = Thread.Status.RUNNING
    _enqueue(run, task)
    return run


@contextmanager
def _one_active_run(thread_label: str) -> Iterator[None]:
    """Turn the database's one-active-run-per-thread refusal into a clear error. The
    pre-check in `_create_run` gives the common case; the constraint closes the race
    (`answer_thread` raises it itself when it found no run to join twice)."""
    try:
        yield
    except IntegrityError as exc:
        text = str(exc)
        if "run_one_active_per_thread" in text or "orchestration_run" in text:
            raise ThreadHasActiveRun(
                f"thread {thread_label} already has a queued, running or stalled run; wait "
                "for it, cancel it, or resume it if it is stalled",
                thread_id=thread_label,
            ) from exc
        if "thread_id" in text:
            raise ThreadExists(
                f"a thread named {thread_label!r} already exists; pick another id or open it",
                thread_id=thread_label,
            ) from exc
        raise


def _check_resumable(thread: Thread) -> None:
    if thread.status in (Thread.Status.DONE, Thread.Status.CANCELLED):
        raise ThreadNotResumable(
            f"thread {thread.thread_id} is {thread.get_status_display().lower()}: there is "
            "nothing left to resume. Fork it from a checkpoint to run it again.",
            thread_id=thread.thread_id, graph_name=thread.graph_name,
        )


def _latest_run(thread: Thread) -> Run | None:
    return Run.objects.filter(thread=thread).order_by("-created_at", "-pk").first()


def _check_start_input(graph_name: str, input: Any) -> None:  # noqa: A002
    """Refuse, before anything is queued, an input the engine would refuse at the start: a
    key outside the graph's input_schema fails the run later and loses the caller's input."""
    spec = registry.get_graph(graph_name).spec  # UnknownGraph is a RunError too
    try:
        start_updates(spec.schema, spec.input, input)
    except InvalidUpdateError as exc:
        raise InvalidRunInput(str(exc)) from exc


def _encode(run_input: RunInput) -> bytes:
    try:
        return run_input.encode()
    except InputError as exc:
        raise InvalidRunInput(str(exc)) from exc


def _user_or_none(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None
