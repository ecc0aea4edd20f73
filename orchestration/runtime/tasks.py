"""The worker side of a run: claim it, run its graph under a lease, record how it ended.

`execute_run` is a `django.tasks` task, so any Tasks backend can carry it (the database
backend's `manage.py db_worker` by default). Delivering the same run twice is harmless: the
claim is a conditional update, and only one worker wins it.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.tasks import task
from django.utils import timezone
from django_tasks_db import DatabaseBackend

from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import metrics, queues, taskrow
from orchestration.runtime.dbfailure import database_unavailable, stall_after_database_error
from orchestration.runtime.events import publish
from orchestration.runtime.inputs import InputKind, RunInput
from orchestration.runtime.leases import (
    Heartbeat,
    Lease,
    LeaseLost,
    claim,
    lease_seconds,
    queued_again,
    worker_id,
)
from orchestration.runtime.logcontext import log_context
from orchestration.runtime.models import Run, Thread
from orchestration.runtime.outputs import OutputRecorder
from orchestration.runtime.registry import get_graph
from orchestration.runtime.runclaim import (
    claim_run,
    claim_run_sqlite,
    sqlite_params,
    taken_sqlite,
)
from orchestration.runtime.runend import end_run, forget_reads
from orchestration.runtime.savers import DjangoCheckpointSaver
from orchestration.runtime.shutdown import STOPPING, HandBack
from orchestration.runtime.signals import run_failed, run_finished, run_paused
from orchestration.runtime.store import DjangoStore
from orchestration.runtime.taskclaim import claimed_run, run_task_success
from orchestration.types import Command

logger = logging.getLogger(__name__)


@task(queue_name=queues.RUNS)
def execute_run(run_id: int) -> dict[str, Any]:
    """Run (or continue) run `run_id`; returns what happened, for the task result."""
    lease, run = _claim(run_id)
    if lease is None:
        status = Run.objects.filter(pk=run_id).values_list("status", flat=True).first()
        logger.info("run %s not claimed (status %s): another worker has or had it", run_id, status)
        return {"run_id": run_id, "outcome": "skipped", "status": status}
    with log_context(run_id=run.pk, thread_id=run.thread.thread_id):
        clock = metrics.Stopwatch()
        result = _execute(run, lease)
        metrics.RUN_SECONDS.labels(run.thread.graph_name, result.get("outcome", "?")).observe(
            clock.lap()
        )
        logger.info("run %s: %s", run.pk, result.get("outcome"))
        return result


def _claim(run_id: int) -> tuple[Lease, Run] | tuple[None, None]:
    """Take the run, read it with its thread and record `run_started`, all or nothing: the
    claim is a conditional update, and a worker dying after the commit leaves a running run
    with a lease. On PostgreSQL one statement (`runclaim`), on SQLite one transaction of
    three (`runclaim.claim_run_sqlite`), which `stepwise_worker` runs as part of its claim
    of this task's row (`taskclaim.claimed_run`); elsewhere one transaction of the ORM's."""
    tried, taken = claimed_run(run_id)  # by the worker's claim of this task's row
    if tried:
        return taken or (None, None)
    if connection.vendor == "postgresql":
        return claim_run(run_id) or (None, None)
    if connection.vendor == "sqlite":
        token, seconds = uuid.uuid4().hex, lease_seconds()
        params = sqlite_params(run_id, token, seconds)
        with transaction.atomic(), connection.cursor() as cursor:
            rows = claim_run_sqlite(cursor, params)
        return (None, None) if rows is None else taken_sqlite(rows, token, seconds)
    with transaction.atomic():
        lease = claim(run_id)
        if lease is None:
            return None, None
        run = Run.objects.select_related("thread").get(pk=run_id)
        publish("run_started", run=run, data={"attempt": run.attempts, "worker": run.worker})
        return lease, run


def _execute(run: Run, lease: Lease) -> dict[str, Any]:
    try:
        with Heartbeat(lease):
            return RunExecution(run, lease).execute()
    except HandBack:
        return _hand_back(run, lease)
    except Exception as exc:
        if lease.lost.is_set() or isinstance(exc, LeaseLost):
            return _lease_lost(run, lease, exc)
        if database_unavailable(exc):  # not the run's fault: it stalls, the sweeper resumes it
            return stall_after_database_error(run, lease, exc)
        return _record_failure(run, lease, exc)


class RunExecution:
    """One attempt at one run, on the lease `lease`."""

    def __init__(self, run: Run, lease: Lease) -> None:
        self.run = run
        self.lease = lease
        self.thread_config = CheckpointConfig(run.thread.thread_id)
        self.extra = {
            "run_id": run.pk,
            "user_id": run.requested_by_id,
            "reason": run.reason,
        }

    def execute(self) -> dict[str, Any]:
        # Write-behind: superstep N commits while N+1 runs; the engine flushes before a node
        # with side effects and at the end of each pass (see savers.DjangoCheckpointSaver).
        # Its commits may skip the WAL flush: `record_outcome` commits synchronously after
        # the engine's last flush, which makes every put of the pass durable.
        self.saver = DjangoCheckpointSaver(
            lease=self.lease, durability=_durability(),
            synchronous_commit=_synchronous_commit(),
        )
        try:
            self.graph = get_graph(self.run.thread.graph_name).with_checkpoint_saver(self.saver)
            if self.graph.store is None:
                # memory across threads: the Django store, unless the graph brought its own
                self.graph = self.graph.with_store(DjangoStore())
            input, config = self.plan()
            while True:
                self.stream(input, config)
                more = self.record_outcome()
                if isinstance(more, dict):
                    return more
                # Answers arrived while this run worked: deliver them and go on (same lease).
                input, config = more, self.thread_config
        finally:
            self._close_saver()

    def _close_saver(self) -> None:
        """Every write was flushed when the engine returned; a failure here was already raised
        there. Its write-behind connection goes with the run, except in a worker that keeps it
        for its next run (`keep_writer_between_runs`): a new PostgreSQL session per run
        execution cost the database more than the run's own statements."""
        try:
            if _keep_writer.on:
                self.saver.flush()
            else:
                self.saver.close()
        except Exception:
            logger.debug("closing run %s's checkpoint writer", self.run.pk, exc_info=True)

    def stream(self, input: Any, config: CheckpointConfig) -> None:
        outputs = OutputRecorder(self.run)
        clock = metrics.Stopwatch()
        superstep = metrics.SUPERSTEP_SECONDS.labels(self.run.thread.graph_name)
        progress = _Progress(self.run)
        try:
            # What nodes stream is recorded in the node's own thread as it is written (a
            # node's database connection is its thread's; a test's transaction is this one).
            for update in self.graph.stream(
                input, config, stream_mode="updates", extra=self.extra, on_custom=outputs.add
            ):
                # "updates" yields after each superstep is checkpointed (one chunk per task:
                # the tasks of one superstep after the first add ~0 s laps, what they cost)
                superstep.observe(clock.lap())
                if self.lease.expired() and not _still_ours(self.lease):
                    # lost, or not renewed for a whole lease (this process was stopped) and
                    # taken since: stop before the next step runs, not at its write
                    raise LeaseLost(self.run.pk, self.lease.token)
                progress.add(_node_names(update))
                if STOPPING.is_set():  # the superstep is checkpointed: a safe place to stop
                    raise HandBack(self.run.pk)
        finally:
            try:
                outputs.announce()
            except Exception:  # noqa: BLE001 - the rows are stored; only the nudge is lost
                logger.warning("run %s: could not announce its output", self.run.pk)

    def plan(self) -> tuple[Any, CheckpointConfig]:
        """What to invoke the graph with. A run picked up again after its worker died continues
        from the last checkpoint it wrote: its finished supersteps are never re-executed, and
        an answer the engine already stored is never sent again."""
        run_input = RunInput.decode(self.run.input)
        continuing = False
        if self.run.attempts > 1:  # a first attempt has written nothing yet: no read
            latest = self.saver.get_tuple(self.thread_config)
            continuing = (
                latest is not None and dict(latest.metadata.extra).get("run_id") == self.run.pk
            )
        if run_input.kind is InputKind.VALUE and not continuing:
            if self.run.attempts == 1 and not self.run.thread.head_checkpoint_id:
                # a new thread: the engine's read of its head needs no round trip
                self.saver.no_head_next(self.thread_config.thread_id)
            return run_input.value, self.thread_config
        if run_input.kind is InputKind.FORK and not continuing:
            at = self.thread_config.with_checkpoint_id(self.run.from_checkpoint_id)
            if not run_input.values:
                return None, at
            self.graph.update_state(
                at, dict(run_input.values), as_node=self.run.as_node or None, extra=self.extra
            )
            return None, self.thread_config
        command = run_input.command(self.pending_interrupts(), first_pass=not continuing)
        return command, self.thread_config

    def pending_interrupts(self) -> set[str]:
        """Interrupt ids still waiting for an answer at the thread's head (an answer the
        engine stored on the paused checkpoint removes its interrupt from this set).
        The head read here also answers the engine's read of it when the run starts, right
        after (one round trip less per resume: `keep_next_read`)."""
        self.saver.keep_next_read()
        return {i.id for i in self.graph.get_state(self.thread_config).interrupts}

    def record_outcome(self) -> dict[str, Any] | Command[Any]:
        """Record how this pass ended; or, if answers to the interrupts it paused at arrived
        meanwhile, record nothing and return the Command that delivers them. The head is
        what this run's saver put last (under the lease no one else writes the thread's
        checkpoints): no read of what it just wrote (`read_own_head_next`)."""
        self.saver.read_own_head_next()
        snapshot = self.graph.get_state(self.thread_config)
        head = snapshot.config.checkpoint_id or ""
        if snapshot.next:
            interrupts = list(snapshot.interrupts)
            result = {"run_id": self.run.pk, "outcome": "waiting", "interrupts": len(interrupts)}
            try:
                _finish(
                    self.run, self.lease, Run.Status.WAITING, Thread.Status.WAITING, head,
                    event_data={
                        "next": list(snapshot.next), "interrupts": [i.id for i in interrupts],
                    },
                    send=lambda run: run_paused.send(
                        sender=Run, run=run, interrupts=interrupts, thread_current=bool(head)
                    ),
                    before=lambda run: _answers_arrived(run, {i.id for i in interrupts}),
                    result=result,
                )
            except _AnswersArrived as arrived:
                return arrived.command
            return result
        result = {"run_id": self.run.pk, "outcome": "succeeded"}
        _finish(
            self.run, self.lease, Run.Status.SUCCEEDED, Thread.Status.DONE, head,
            send=lambda run: run_finished.send(sender=Run, run=run), result=result,
        )
        return result


class _KeepWriter(threading.local):
    on = False


_keep_writer = _KeepWriter()


@contextmanager
def keep_writer_between_runs() -> Iterator[None]:
    """Runs executed on this thread inside the block leave their write-behind connection open
    for the next one (`manage.py stepwise_worker` executes its tasks so, and closes it with
    `write_behind.close_writers` whenever it goes idle). If the database restarted meanwhile,
    the worker's own connection fails first, on its next task claim, before any run's write.
    """
    previous, _keep_writer.on = _keep_writer.on, True
    try:
        yield
    finally:
        _keep_writer.on = previous


def _durability() -> str:
    """Write-behind where a commit waits on a server (PostgreSQL: the round trip and the WAL
    flush overlap the next superstep); synchronous on SQLite, whose commit is in-process
    work the GIL would serialize with the next superstep anyway (measured slower)."""
    default = "async" if connection.vendor == "postgresql" else "sync"
    return str(getattr(settings, "STEPWISE_CHECKPOINT_DURABILITY", default))


def _synchronous_commit() -> bool:
    """Whether the write-behind puts wait for PostgreSQL's WAL flush: off unless
    STEPWISE_CHECKPOINT_SYNCHRONOUS_COMMIT (see docs/deployment.md, "Checkpoint commits")."""
    return bool(getattr(settings, "STEPWISE_CHECKPOINT_SYNCHRONOUS_COMMIT", False))


class _AnswersArrived(Exception):  # noqa: N818 - a signal to keep running, not an error
    def __init__(self, command: Command[Any]) -> None:
        self.command = command
        super().__init__("answers arrived while the run was working")


def _answers_arrived(run: Run, pending: set[str]) -> None:
    """Inside the transaction that would record the pause, after this run's row is locked by
    that update (`run.input` read since): `runs.answer_thread` locks the same row before it
    adds answers, so every answer committed before the pause is seen here, and any later one
    finds the run waiting and queues a new run. Raises (rolling the pause back) when there
    is something to deliver."""
    answers = RunInput.decode(run.input).undelivered(pending)
    if answers:
        raise _AnswersArrived(Command(resume=answers))


def _finish(
    run: Run,
    lease: Lease,
    status: str,
    thread_status: str,
    head: str,
    *,
    send: Any,
    before: Any = None,
    event_data: dict[str, Any] | None = None,
    error: str = "",
    tb: str = "",
    result: dict[str, Any] | None = None,
) -> None:
    """Record the end of this attempt, together with what signal receivers write, or nothing
    at all if the lease is gone (someone else owns the run now). `result`: what the task
    will return; a worker running this run's task row records the row's success with it in
    the same commit (`taskclaim.RunTaskSuccess`: one statement and one commit fewer, and no
    crash between a run's end and its task's), where the commit is this block's own."""
    now = timezone.now()
    run_fields: dict[str, Any] = {
        "status": status, "finished_at": now, "lease_token": "", "lease_expires_at": None,
        "error": error[:10_000], "traceback": tb,
    }
    thread_fields: dict[str, Any] = {"status": thread_status, "updated_at": now}
    if head:
        thread_fields["head_checkpoint_id"] = head
    success = None
    if result is not None and not connection.in_atomic_block:
        success = run_task_success(run.pk, connection.alias)
    # The fenced update, the thread's and the event (on PostgreSQL in one statement):
    # `before` looks at the input it read, and if it raises, the thread's update and the
    # event roll back with the run's, as if never written (an event id is skipped, no more).
    # What the run end's statement read for the receivers (`runend.read_with_run_end`) is
    # for its transaction only.
    try:
        with transaction.atomic():
            if not end_run(run, lease, run_fields, thread_fields, f"run_{status}", error,
                           event_data or {}, want_input=before is not None,
                           task=None if success is None else (success, result)):
                lease.lost.set()
                raise LeaseLost(run.pk, lease.token)
            if before is not None:
                before(run)
            # The rows now hold exactly these values (the run's row is locked by the update,
            # its other fields are this worker's under the lease): set them here rather than
            # read the run and its thread back. `input` (answers may have been added
            # meanwhile) is read again when it matters: by `end_run` for `_answers_arrived`,
            # and by the receivers that need it.
            for name, value in run_fields.items():
                setattr(run, name, value)
            for name, value in thread_fields.items():
                setattr(run.thread, name, value)
            send(run)
    finally:
        forget_reads()
    if success is not None:
        success.committed()


def _record_failure(run: Run, lease: Lease, exc: BaseException) -> dict[str, Any]:
    """The run FAILED (or, if its lease is gone, the loss recorded); what the task returns."""
    logger.warning("run %s failed: %s", run.pk, exc)
    tb = _storable_text("".join(traceback.format_exception(exc)))
    result = {"run_id": run.pk, "outcome": "failed", "error": _storable_text(str(exc))}
    try:
        _finish(
            run, lease, Run.Status.FAILED, Thread.Status.FAILED, "",
            error=_storable_text(f"{type(exc).__name__}: {exc}"), tb=tb,
            send=lambda r: run_failed.send(sender=Run, run=r), result=result,
        )
    except LeaseLost as lost:
        _lease_lost(run, lease, lost)
    return result


def _storable_text(text: str) -> str:
    """`text` with each NUL character written as `\\x00`. PostgreSQL stores none in text or
    jsonb: a failure whose message held one (a node's error quoting a binary upload) was
    refused as it was recorded, so the run stalled, and failed the same way again on every
    automatic resume, instead of failing once with its error shown."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def _still_ours(lease: Lease) -> bool:
    """Renew a lease that looks expired: True if nobody took the run meanwhile."""
    try:
        return lease.renew()
    except Exception:  # noqa: BLE001 - unreachable database: cannot prove it, so stop
        logger.warning("run %s: could not renew an expired lease", lease.run_id, exc_info=True)
        return False


def _lease_lost(run: Run, lease: Lease, exc: BaseException) -> dict[str, Any]:
    status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
    if status == Run.Status.CANCELLED:
        # ops cancelled it: expected, not a lease alert (an ops trial counted these as losses)
        logger.info("run %s: cancelled, this worker stops", run.pk)
        return {"run_id": run.pk, "outcome": "cancelled"}
    logger.warning("run %s: lease lost, this worker stops (%s)", run.pk, exc)
    publish(
        "run_lease_lost", run=run, reason=str(exc),
        data={"worker": worker_id(), "token": lease.token[:8]},
    )
    return {"run_id": run.pk, "outcome": "lease_lost"}


def _hand_back(run: Run, lease: Lease) -> dict[str, Any]:
    """Give the run back under this worker's lease (stalled, then queued again at once, as the
    sweeper would after the lease expired), so a stopping worker costs the run no lease wait.
    It reads "queued", not "stalled": nothing is stuck (a deploy raised stall alerts)."""
    with transaction.atomic():
        released = Run.objects.filter(
            pk=run.pk, lease_token=lease.token, status=Run.Status.RUNNING
        ).update(status=Run.Status.STALLED, lease_token="", lease_expires_at=None)
        if not released:  # the lease was lost meanwhile: whoever has the run now keeps it
            return {"run_id": run.pk, "outcome": "lease_lost"}
        Thread.objects.filter(pk=run.thread_id).update(
            status=Thread.Status.STALLED, updated_at=timezone.now()
        )
        run.refresh_from_db()
        publish("run_handed_back", run=run, reason="worker shutting down",
                data={"worker": worker_id()})
        publish("run_requeued", run=run, reason="handed back by a stopping worker")
        _requeue(run.pk)
        queued_again(run)
    logger.info("run %s handed back at a superstep boundary (worker shutting down)", run.pk)
    return {"run_id": run.pk, "outcome": "handed_back"}


def _requeue(run_id: int) -> None:
    """A new task for a handed-back run. With the database backend the task row commits with
    the run's change (no window in which a crash leaves a stalled run without a task);
    another backend gets it once that change has committed."""

    def send() -> None:
        taskrow.enqueue_run(execute_run, run_id)

    if isinstance(execute_run.get_backend(), DatabaseBackend):
        send()
    else:
        transaction.on_commit(send)


def progress_seconds() -> float:
    """At most one `run_progress` event per run this often, the first one this long after the
    pass started: a pass that ends sooner records none, its `run_started` and how it ended
    (`run_waiting`, `run_succeeded`, ...) tell the pages everything. 0: one per superstep."""
    return float(getattr(settings, "STEPWISE_PROGRESS_SECONDS", 0.5))


class _Progress:
    """`run_progress` events coalesced: one Event row (and push) per `progress_seconds()`,
    naming every node that finished since the previous one, instead of one per superstep
    (each is a row, a commit and a push that makes every open thread page refresh)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.every = progress_seconds()
        self.published_at = time.monotonic()
        self.nodes: set[str] = set()

    def add(self, nodes: list[str]) -> None:
        self.nodes.update(nodes)
        now = time.monotonic()
        if now - self.published_at < self.every:
            return
        self.published_at = now
        publish("run_progress", run=self.run, data={"nodes": sorted(self.nodes)})
        self.nodes = set()


def _node_names(update: Any) -> list[str]:
    return [str(name) for name in update] if isinstance(update, dict) else []
