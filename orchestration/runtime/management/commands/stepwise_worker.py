"""`manage.py stepwise_worker`: django-tasks-db's `db_worker`, woken by new tasks.

Same options and behaviour as `db_worker` (it is a subclass); the only change is the idle
wait: instead of sleeping `--interval` seconds between polls, it waits for a PostgreSQL
notification sent when a task is enqueued (see `orchestration.runtime.wakeup`), with
`--interval` as the timeout. A run is then picked up within milliseconds of the decision's
commit. On SQLite it polls exactly like `db_worker`.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import time
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError, close_old_connections
from django.db.utils import OperationalError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from orchestration.runtime.dbfailure import database_unavailable, drop_broken_connection
from orchestration.runtime.leases import worker_id
from orchestration.runtime.shutdown import STOPPING
from orchestration.runtime.tasks import keep_writer_between_runs
from orchestration.runtime.wakeup import Waiter
from orchestration.runtime.workers import WorkerBeat
from orchestration.runtime.write_behind import close_writers

# How long a worker waits before trying an unreachable database again.
DATABASE_RETRY_SECONDS = 1.0


class WakingWorker(db_worker.Worker):
    """`db_worker.Worker` whose idle wait is `Waiter.wait`.

    `run` is django-tasks-db 0.13's `Worker.run` with `time.sleep(self.interval)` replaced:
    the library has no hook for the wait, so the loop is restated here (claiming and running
    a task are still the library's `get_locked`, `claim` and `run_task`).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waiter: Waiter | None = None

    def shutdown(self, signum: int, frame: Any) -> None:
        # The run in hand is given back at its next superstep boundary (tasks.RunExecution),
        # not run to its end: stopping takes one superstep, however long the run is.
        STOPPING.set()
        if self.running and not self.running_task:  # idle: nothing to hand back
            db_worker.logger.warning("Received %s - idle, exiting", signal.strsignal(signum))
            _exit_now()
        super().shutdown(signum, frame)

    def run(self) -> None:
        if self.startup_delay and self.interval:
            time.sleep(random.random())  # as db_worker: no thundering herd at startup
        self.waiter = Waiter(DBTaskResult.objects.db)
        db_worker.logger.info(
            "Starting worker worker_id=%s queues=%s (%s)", self.worker_id,
            ",".join(self.queue_names),
            "woken by LISTEN/NOTIFY" if self.waiter.listening else "polling",
        )
        try:
            # the process says it lives (every third of a lease) for /readyz and /metrics,
            # under the name its runs record (`Run.worker`: host:pid); its runs share one
            # checkpoint write-behind connection while tasks keep coming
            with WorkerBeat(worker_id()), keep_writer_between_runs():
                self._loop()
        finally:
            close_writers()
            self.waiter.close()

    def _loop(self) -> None:
        assert self.waiter is not None
        while self.running:
            close_old_connections()
            try:
                task_result, retrieved = self._claim_next()
                if task_result is not None:
                    self.run_task(task_result)
            except DatabaseError as exc:
                if not database_unavailable(exc):
                    raise
                # The database restarting or failing over: wait for it instead of exiting (a
                # process runner such as honcho stops every process when one exits). A task
                # claimed meanwhile keeps its row; its run is recovered by the sweeper.
                db_worker.logger.warning("database unavailable; trying again in %ss",
                                         DATABASE_RETRY_SECONDS, exc_info=True)
                drop_broken_connection()
                if self.running:
                    time.sleep(DATABASE_RETRY_SECONDS)
                continue
            if self.batch and retrieved and task_result is None:
                db_worker.logger.info("No more tasks to run for worker_id=%s", self.worker_id)
                return
            if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                db_worker.logger.info("Ran maximum tasks (%d)", self._run_tasks)
                return
            close_old_connections()
            if self.running and not task_result:
                close_writers()  # idle: no connection held for runs that may not come
                self.waiter.wait(self.interval)

    def _claim_next(self) -> tuple[DBTaskResult | None, bool]:
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
    help = "Run a database task worker that wakes up when a task is enqueued (PostgreSQL)."

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
