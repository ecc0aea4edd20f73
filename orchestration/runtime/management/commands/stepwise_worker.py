"""`manage.py stepwise_worker`: django-tasks-db's `db_worker`, woken by new tasks.

Same options and behaviour as `db_worker` (it is a subclass); the only change is the idle
wait: instead of sleeping `--interval` seconds between polls, it waits for the wake-up sent
when a task is enqueued (see `orchestration.runtime.wakeup`: a PostgreSQL notification, or
on SQLite a datagram to a Unix socket of its own), with `--interval` as the timeout. A run
is then picked up within milliseconds of the decision's commit.

Unlike `db_worker`, an error outside a task's own execution (claiming the next task, the
library recording a result or reporting it, the wake-up wait) does not end the process: a
worker pool that loses a process to one bad row stops taking work (and under honcho stops
every process). The error is logged (ERROR, with the task and worker in the JSON line),
counted in `stepwise_worker_errors_total{kind}`, and the loop goes on after a backoff that
doubles with each failure in a row (1 s up to `MAX_BACKOFF_SECONDS`); an unreachable database
is waited for at a steady second. Only SIGTERM/SIGINT, or `STEPWISE_WORKER_MAX_ERRORS`
unexpected errors in a row (a fault no retry fixes: the process exits with status 1 for its
supervisor to restart), end it. A task that raises is the library's business, as in
`db_worker`: its row is recorded FAILED with the traceback and the worker goes on. The worker
claims rows under the id its heartbeat beats with (host:pid by default), which is how the
sweeper tells a dead worker's rows (`orchestration.runtime.lost_tasks`).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError, close_old_connections, connections
from django.db.utils import OperationalError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.compat import TaskContext, task_finished, task_started
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from orchestration.runtime import metrics
from orchestration.runtime.dbfailure import database_unavailable, drop_broken_connection
from orchestration.runtime.leases import worker_id
from orchestration.runtime.lost_tasks import recover
from orchestration.runtime.shutdown import STOPPING
from orchestration.runtime.taskclaim import TaskClaim, holding, recorded_with_run_end
from orchestration.runtime.taskclaim_sqlite import SqliteTaskClaim
from orchestration.runtime.tasks import keep_writer_between_runs
from orchestration.runtime.wakeup import Waiter
from orchestration.runtime.workers import WorkerBeat
from orchestration.runtime.write_behind import close_writers

# How long a worker waits before trying an unreachable database again.
DATABASE_RETRY_SECONDS = 1.0
# The longest wait after unexpected errors in a row: a persistent fault logs a line a minute
# until STEPWISE_WORKER_MAX_ERRORS ends the process, a passing one costs seconds.
MAX_BACKOFF_SECONDS = 60.0
# How long a listening worker keeps its checkpoint writer's connection after a task, for a
# task announced meanwhile: under load the next one comes within this, and a new session
# per task costs PostgreSQL a backend start.
WRITER_GRACE_SECONDS = 0.1

logger = logging.getLogger(__name__)


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` unexpected errors in a row."""
    return min(DATABASE_RETRY_SECONDS * 2 ** max(failures - 1, 0), MAX_BACKOFF_SECONDS)


def max_errors() -> int:
    return int(getattr(settings, "STEPWISE_WORKER_MAX_ERRORS", 10))


class WakingWorker(db_worker.Worker):
    """`db_worker.Worker` whose idle wait is `Waiter.wait`.

    `run` is django-tasks-db 0.13's `Worker.run` with `time.sleep(self.interval)` replaced:
    the library has no hook for the wait, so the loop is restated here. Claiming and running
    a task are the library's `get_locked`, `claim` and `run_task`, except on PostgreSQL,
    where `runtime.taskclaim` claims a task and records its success in one fixed statement
    each (`run_task` restated for the latter), and on SQLite, where
    `runtime.taskclaim_sqlite` does the same in one transaction each.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waiter: Waiter | None = None
        self.beat: WorkerBeat | None = None  # while `run` runs: this process's heartbeat
        self.failures = 0  # unexpected errors in a row
        self.claimed: DBTaskResult | None = None  # this round's task, for the error's log line
        self.gave_up = False
        # rows this worker claimed whose result it could not record (the error came out of
        # `run_task`): still RUNNING while this worker lives, so no sweeper would finish them
        self.unrecorded: list[DBTaskResult] = []
        # the claim of PostgreSQL (one statement) or SQLite (one transaction with its run)
        self.task_claim: TaskClaim | SqliteTaskClaim | None = None
        self.task_ended = -WRITER_GRACE_SECONDS  # when its last task returned (monotonic)

    @property
    def _one_statement_claim(self) -> TaskClaim | SqliteTaskClaim | None:
        using = DBTaskResult.objects.db
        vendor = connections[using].vendor
        if self.task_claim is None and vendor in ("postgresql", "sqlite"):
            kind = TaskClaim if vendor == "postgresql" else SqliteTaskClaim
            self.task_claim = kind(
                using=using, backend_name=self.backend_name, worker_id=self.worker_id,
                queue_names=None if self.process_all_queues else self.queue_names,
                excluded_queue_names=self.excluded_queue_names,
            )
        return self.task_claim

    def shutdown(self, signum: int, frame: Any) -> None:
        """db_worker's handler, except that more SIGTERMs ask for the same stop instead of
        forcing one (Ctrl+C twice still forces): honcho signals a worker's whole process
        group and bin/serve-worker, in that group, passes the signal on, so a served worker gets
        two, and forcing lost the hand-back of the run in hand. A process manager that will
        not wait escalates with SIGKILL on its own.

        Handlers nest: the second signal is handled between any two bytecodes of the first
        one's handler. So the stop is recorded before anything else, and no SIGTERM path
        exits while a run is in hand, whichever of the two handlers it is."""
        first = self.running
        self.running = False
        # The run in hand is given back at its next superstep boundary (tasks.RunExecution),
        # not run to its end: stopping takes one superstep, however long the run is.
        STOPPING.set()
        name = signal.strsignal(signum)
        if not first:
            if signum == signal.SIGTERM:
                db_worker.logger.info("Received %s again - still stopping at the superstep "
                                      "boundary", name)
                return
            db_worker.logger.warning("Received %s - terminating current task.", name)
            self.reset_signals()
            sys.exit(1)
        if not self.running_task:  # idle: nothing to hand back
            db_worker.logger.warning("Received %s - idle, exiting", name)
            # `run`'s `with WorkerBeat` and `finally` are skipped by the exit below: record
            # the clean stop (`stopped_at`: /readyz, the metrics and the sweeper's lost tasks
            # read it) and remove the waiter's socket here
            if self.beat is not None:
                self.beat.stop_from_signal_handler()
            if self.waiter is not None:
                self.waiter.close()
            _exit_now()
        db_worker.logger.warning("Received %s - shutting down gracefully... (press Ctrl+C "
                                 "again to force)", name)

    def run(self) -> None:
        if self.startup_delay and self.interval:
            time.sleep(random.random())  # as db_worker: no thundering herd at startup
        self.waiter = Waiter(DBTaskResult.objects.db,
                             queues=None if self.process_all_queues else self.queue_names)
        db_worker.logger.info(
            "Starting worker worker_id=%s queues=%s (%s)", self.worker_id,
            ",".join(self.queue_names),
            self._wake_up_by(),
        )
        try:
            # the process says it lives (every third of a lease) for /readyz, /metrics and the
            # sweeper's lost tasks, under the id it claims task rows with (host:pid unless
            # --worker-id says otherwise, as its runs' `Run.worker`); its runs share one
            # checkpoint write-behind connection while tasks keep coming
            self.beat = WorkerBeat(
                self.worker_id, queues=None if self.process_all_queues else self.queue_names)
            with self.beat, keep_writer_between_runs():
                self._loop()
        finally:
            close_writers()
            self.waiter.close()

    def _wake_up_by(self) -> str:
        if self.waiter is None or not self.waiter.listening:
            return "polling"
        if connections[DBTaskResult.objects.db].vendor == "postgresql":
            return "woken by LISTEN/NOTIFY"
        return "woken by a datagram on enqueue"

    def _loop(self) -> None:
        while self.running:
            self.claimed = None
            try:
                if not self._round():
                    return
            except Exception as exc:  # noqa: BLE001 - the point: one error must not end the pool
                self._survive(exc, self.claimed)
                if self.gave_up:
                    return
                continue
            self.failures = 0

    def _round(self) -> bool:
        """Claim and run one task, or wait for one; False when the worker is done."""
        assert self.waiter is not None
        close_old_connections()
        self._record_unrecorded()
        task_result, retrieved = self._claim_next()
        self.claimed = task_result
        if task_result is not None:
            self._run(task_result)
        if self.batch and retrieved and task_result is None:
            db_worker.logger.info("No more tasks to run for worker_id=%s", self.worker_id)
            return False
        if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
            db_worker.logger.info("Ran maximum tasks (%d)", self._run_tasks)
            return False
        close_old_connections()
        if self.running and not (task_result and self._more_may_be_ready()):
            self._wait()
        return True

    def _wait(self) -> None:
        """Wait for a task. Within `WRITER_GRACE_SECONDS` of its last task a listening worker
        keeps its checkpoint writer's connection: a task announced meanwhile is run on it."""
        assert self.waiter is not None
        grace = 0.0
        if self.waiter.listening:
            grace = min(WRITER_GRACE_SECONDS - (time.monotonic() - self.task_ended),
                        self.interval)
            if grace > 0 and self.waiter.wait(grace):
                return
        close_writers()  # idle: no connection held for runs that may not come
        self.waiter.wait(self.interval - max(grace, 0.0))

    def _more_may_be_ready(self) -> bool:
        """After running a task: whether to claim again at once rather than wait. A listening
        worker whose claim found no other ready row waits instead: a task enqueued since
        that claim was announced after it, so the wait returns at once for it (one empty
        claim less per task). Polling (SQLite, no LISTEN) or in batch mode: always."""
        claim, waiter = self.task_claim, self.waiter
        if claim is None or waiter is None or not waiter.listening or self.batch:
            return True
        return claim.more

    def run_task(self, db_task_result: DBTaskResult) -> None:
        """db_worker's `run_task` (django-tasks-db 0.13) with, on PostgreSQL and SQLite, the
        success recorded by the claim's `succeeded` (the same row change and signals as
        `set_successful`, one statement built once), or, for a run's execution, by the
        statement (PostgreSQL) or transaction (SQLite) that ended the run
        (`taskclaim.holding`); elsewhere the library's own."""
        claim = self._one_statement_claim
        if claim is None:
            super().run_task(db_task_result)
            return
        try:
            self.running_task = True
            task = db_task_result.task
            task_result = db_task_result.task_result
            backend_type = task.get_backend()
            task_started.send(sender=backend_type, task_result=task_result)
            with holding(claim, db_task_result):  # a run's end may record its success
                if task.takes_context:
                    return_value = task.call(TaskContext(task_result=task_result),
                                             *task_result.args, **task_result.kwargs)
                else:
                    return_value = task.call(*task_result.args, **task_result.kwargs)
            # inside the error handling, as the library: a failure to record it (a value
            # JSON cannot encode) is recorded as the task's failure
            if not recorded_with_run_end(db_task_result, return_value):
                claim.succeeded(db_task_result, return_value)
            task_finished.send(sender=backend_type, task_result=db_task_result.task_result)
        except BaseException as e:
            db_task_result.set_failed(e)
            try:
                sender = type(db_task_result.task.get_backend())
                task_result = db_task_result.task_result
            except (ImportError, SuspiciousOperation):
                db_worker.logger.exception("Task id=%s failed unexpectedly", db_task_result.id)
            else:
                task_finished.send(sender=sender, task_result=task_result)
        finally:
            self.running_task = False
            self._run_tasks += 1

    def _run(self, task_result: DBTaskResult) -> None:
        try:
            self.run_task(task_result)
            self.task_ended = time.monotonic()
        except Exception:
            # the task ran (or not) but the library could not finish its row: remember it
            self.unrecorded.append(task_result)
            raise

    def _record_unrecorded(self) -> None:
        """Finish the rows whose result could not be recorded, as a dead worker's would be
        (their work queued again if it must happen); a run's execution is left to its lease."""
        while self.unrecorded:
            row = self.unrecorded[0]
            recover(row, f"worker {self.worker_id} could not record the task's result")
            self.unrecorded.pop(0)

    def _survive(self, exc: Exception, task_result: DBTaskResult | None) -> None:
        """Log, count and wait out an error outside a task's own execution."""
        context = {"worker_id": self.worker_id,
                   "task_id": str(task_result.pk) if task_result is not None else None,
                   "task_path": task_result.task_path if task_result is not None else None}
        if isinstance(exc, DatabaseError) and database_unavailable(exc):
            # The database restarting or failing over: wait for it instead of exiting (a
            # process runner such as honcho stops every process when one exits). A run
            # claimed meanwhile keeps its row; its lease expires and the sweeper resumes it.
            metrics.WORKER_ERRORS.labels("database").inc()
            logger.warning("database unavailable; trying again in %ss", DATABASE_RETRY_SECONDS,
                           exc_info=True, extra=context)
            drop_broken_connection()
            wait = DATABASE_RETRY_SECONDS
        else:
            self.failures += 1
            metrics.WORKER_ERRORS.labels("unexpected").inc()
            wait = backoff(self.failures)
            logger.error("error outside a task (%s: %s, %d in a row); the worker goes on in %ss",
                         type(exc).__name__, exc, self.failures, wait, exc_info=True,
                         extra={**context, "failures_in_a_row": self.failures})
            if self.failures >= max_errors():
                logger.critical("%d unexpected errors in a row (STEPWISE_WORKER_MAX_ERRORS): "
                                "the worker exits for its supervisor to start a fresh one",
                                self.failures, extra=context)
                self.gave_up = True
                return
        if self.running:
            time.sleep(wait)

    def _claim_next(self) -> tuple[DBTaskResult | None, bool]:
        if (claim := self._one_statement_claim) is not None:  # see runtime.taskclaim(_sqlite)
            try:
                return claim.next(), True
            except OperationalError as exc:
                if is_locked_database_exception(exc):  # SQLite busy: try again next round
                    return None, False
                raise
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        if self.excluded_queue_names:
            tasks = tasks.exclude(queue_name__in=self.excluded_queue_names)
        with exclusive_transaction(tasks.db):
            try:
                task_result = tasks.get_locked()
                if task_result is not None:
                    task_result.claim(self.worker_id)  # so no other worker runs it
                return task_result, True
            except OperationalError as exc:
                if is_locked_database_exception(exc):  # SQLite busy: try again next round
                    return None, False
                raise


class Command(db_worker.Command):
    help = "Run a database task worker that wakes up when a task is enqueued."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        # db_worker's default is a random string: nothing could tell whose rows those are.
        # Its default queue is Django's default, which would leave notifications (the
        # `notify` queue) unsent by a worker started without --queue-name: ours takes every
        # queue unless told which (the serving profile runs one pool per queue).
        parser.set_defaults(worker_id=worker_id(), queue_name="*")

    def configure_logging(self, verbosity: int) -> None:
        # db_worker sets django.tasks to INFO at the default verbosity, which would undo the
        # level settings.LOGGING gives it (TASKS_LOG_LEVEL): keep that one at -v 1.
        tasks_logger = logging.getLogger("django.tasks")
        level = tasks_logger.level
        super().configure_logging(verbosity)
        if verbosity == 1 and level != logging.NOTSET:
            tasks_logger.setLevel(level)

    def handle(  # db_worker's handle, building a WakingWorker
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        **options: Any,
    ) -> None:
        self.configure_logging(verbosity)
        if reload and batch:
            db_worker.logger.warning("--reload and --batch cannot be combined; not reloading")
            reload = False
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        worker = WakingWorker(
            queue_names=queue_names, interval=interval, batch=batch, backend_name=backend_name,
            startup_delay=startup_delay, max_tasks=max_tasks, worker_id=worker_id,
            excluded_queue_names=excluded,
        )
        if reload:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()  # only the reloaded child handles signals
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
        if STOPPING.is_set():
            _exit_now()
        if worker.gave_up:
            raise CommandError(f"worker {worker_id} stopped after {worker.failures} "
                               "unexpected errors in a row (see the log above)")


def _exit_now() -> None:
    """After a graceful stop, leave without the interpreter's teardown: its final garbage
    collection of a Django process takes seconds of CPU on a busy machine, long enough for a
    process manager's kill timeout (honcho's is 5 s) to SIGKILL a worker that had already
    handed its run back. Everything worth keeping is committed (an uncommitted claim is
    rolled back by the database when the connection drops); logs are flushed here."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
