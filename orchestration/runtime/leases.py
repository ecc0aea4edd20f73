"""A worker's lease on the run it executes: claim, heartbeat, fence, release.

Every state change is a conditional update on (run id, lease token, status running), so it is
correct on SQLite and PostgreSQL alike. A worker that stopped renewing (killed, frozen,
partitioned) loses the run to `resume_stalled`, which moves it out of `running`; from then on
the old worker's fence matches no row, so it can never write a second branch of the thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.tasks import TaskResultStatus, task_backends
from django.utils import timezone
from django_tasks_db import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from orchestration.runtime import queues
from orchestration.runtime.errors import LeaseLost
from orchestration.runtime.models import Run, Thread
from orchestration.runtime.workers import fresh_workers

__all__ = [
    "Heartbeat", "Lease", "LeaseLost", "claim", "expired_runs", "lease_seconds",
    "revoke_expired_lease", "worker_id",
]

logger = logging.getLogger(__name__)


def lease_seconds() -> float:
    return float(getattr(settings, "STEPWISE_LEASE_SECONDS", 30.0))


def worker_id() -> str:
    """This process as a worker: host:pid, what a run records as its `Run.worker` and what
    `stepwise_worker` claims task rows and beats under (so the sweeper can tell whether the
    worker that took a row still lives), cut to the 64 characters django-tasks-db allows."""
    pid = str(os.getpid())
    return f"{socket.gethostname()[:63 - len(pid)]}:{pid}"


@dataclass
class Lease:
    run_id: int
    token: str
    seconds: float
    lost: threading.Event = field(default_factory=threading.Event)
    # when the lease was last taken or renewed, by this process's clock (taken before the
    # statement: the database's expiry is at least this plus `seconds`)
    renewed_at: float = field(default_factory=time.monotonic)

    def expiry(self) -> datetime:
        return timezone.now() + timedelta(seconds=self.seconds)

    def renew(self) -> bool:
        now = timezone.now()
        started = time.monotonic()
        renewed = Run.objects.filter(
            pk=self.run_id, lease_token=self.token, status=Run.Status.RUNNING
        ).update(lease_expires_at=self.expiry(), heartbeat_at=now)
        if not renewed:
            self.lost.set()
        else:
            self.renewed_at = started
        return bool(renewed)

    def expired(self) -> bool:
        """Whether the lease may have run out by this process's own clock: no renewal for a
        whole lease (the process was stopped, or the database unreachable). Another worker
        may hold the run now, so this one must not start another step, though no write of
        its own has failed yet (a write behind the step is fenced only when it lands)."""
        return self.lost.is_set() or time.monotonic() - self.renewed_at >= self.seconds

    def fence(self) -> None:
        """Called by the saver inside each write transaction, before it writes: proves this
        worker still holds the run (and extends the lease) or aborts the write."""
        if self.lost.is_set() or not self.renew():
            raise LeaseLost(self.run_id, self.token)


def queued_again(run: Run) -> None:
    """A stalled run given a task again is queued: what the ops console, the API and the
    sweeper then see (it read "stalled" until a worker took it, and was resumed again and
    again: an API trial queued six tasks for one run; a deploy's hand-backs raised stall
    alerts)."""
    Run.objects.filter(pk=run.pk, status=Run.Status.STALLED).update(status=Run.Status.QUEUED)
    Thread.objects.filter(pk=run.thread_id, status=Thread.Status.STALLED).update(
        status=Thread.Status.RUNNING, updated_at=timezone.now()
    )
    run.refresh_from_db(fields=["status"])


def claim(run_id: int, *, seconds: float | None = None) -> Lease | None:
    """Take a queued or stalled run. None if another worker has it or it is no longer runnable."""
    seconds = lease_seconds() if seconds is None else seconds
    lease = Lease(run_id=run_id, token=uuid.uuid4().hex, seconds=seconds)
    now = timezone.now()
    claimed = Run.objects.filter(
        pk=run_id, status__in=[Run.Status.QUEUED, Run.Status.STALLED]
    ).update(
        status=Run.Status.RUNNING,
        lease_token=lease.token,
        lease_expires_at=lease.expiry(),
        heartbeat_at=now,
        worker=worker_id(),
        attempts=F("attempts") + 1,
        started_at=Coalesce(F("started_at"), now),
    )
    if not claimed:
        return None
    Thread.objects.filter(runs__pk=run_id).update(status=Thread.Status.RUNNING, updated_at=now)
    return lease


def revoke_expired_lease(run_id: int, *, older_than: float = 0.0) -> bool:
    """The row change alone: a running run whose lease expired more than `older_than` seconds
    ago becomes stalled and its token is cleared, so the old worker's fence fails. Records no
    event and sends no signal: `runs.declare_stalled` does that around it."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return bool(
        Run.objects.filter(
            pk=run_id, status=Run.Status.RUNNING, lease_expires_at__lt=cutoff
        ).update(status=Run.Status.STALLED, lease_token="")
    )


def expired_runs(*, older_than: float = 0.0) -> list[Run]:
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return list(
        Run.objects.filter(status=Run.Status.RUNNING, lease_expires_at__lt=cutoff)
        .select_related("thread")
        .order_by("lease_expires_at")
    )


class Heartbeat:
    """Renews the lease every third of its length while the graph runs, from the process's
    heartbeat thread (`Beater`) and its own database connection. Stops on its own once the
    lease is lost; after `__exit__` no renewal of this lease is under way or to come."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease

    def __enter__(self) -> Heartbeat:
        beater().add(self.lease)
        return self

    def __exit__(self, *exc: object) -> None:
        beater().remove(self.lease)


class Beater:
    """One daemon thread per process beats for every lease its runs hold. A thread of its own
    per run (started and joined for every run, with a fresh connection handler each time) was
    a measurable part of a worker's CPU per run, for a beat that a run shorter than a third
    of its lease never needs. Its database connection is closed whenever no lease is left,
    as the thread per run closed its own at the run's end."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.due: dict[int, tuple[float, Lease]] = {}  # id(lease): (next beat, lease)
        self.beating: Lease | None = None  # renewing now, outside the lock
        self.thread = threading.Thread(target=self._loop, name="stepwise-heartbeat",
                                       daemon=True)
        self.thread.start()

    @staticmethod
    def interval(lease: Lease) -> float:
        return max(lease.seconds / 3, 0.05)

    def add(self, lease: Lease) -> None:
        with self.cond:
            self.due[id(lease)] = (time.monotonic() + self.interval(lease), lease)
            self.cond.notify()

    def remove(self, lease: Lease) -> None:
        with self.cond:
            self.due.pop(id(lease), None)
            while self.beating is lease:  # a renewal under way finishes first
                self.cond.wait()
            self.cond.notify()

    def _loop(self) -> None:
        while True:
            with self.cond:
                lease = self._next_due()
                self.beating = lease
            lost = False
            try:
                lost = not self._beat(lease)
            finally:
                with self.cond:
                    if lost:
                        self.due.pop(id(lease), None)
                    self.beating = None
                    self.cond.notify_all()

    def _next_due(self) -> Lease:
        """Wait (holding the lock) until a lease is due; it is rescheduled one interval on."""
        while True:
            if not self.due:
                self._close()
                self.cond.wait()
                continue
            key, (when, lease) = min(self.due.items(), key=lambda item: item[1][0])
            now = time.monotonic()
            if when <= now:  # the next beat an interval after this one, as a sleep would
                self.due[key] = (now + self.interval(lease), lease)
                return lease
            self.cond.wait(when - now)

    @staticmethod
    def _close() -> None:
        try:
            connection.close()  # idle: no connection held between runs
        except Exception:  # noqa: BLE001 - the thread must live on for the next run
            logger.warning("heartbeat: could not close its database connection", exc_info=True)

    def _beat(self, lease: Lease) -> bool:
        """Renew `lease`; False once it is lost (no more beats for it)."""
        try:
            if not lease.renew():
                logger.warning("run %s: lease lost, heartbeat stops", lease.run_id)
                return False
        except Exception:  # noqa: BLE001 - a beat that fails must not end the process's beats
            # A locked or briefly unreachable database: try again next beat; the
            # lease has two more beats of slack before it expires.
            logger.warning("run %s: heartbeat failed", lease.run_id, exc_info=True)
            close_old_connections()
        return True


_beater: Beater | None = None
_beater_lock = threading.Lock()


def beater() -> Beater:
    """The process's heartbeat thread (a new one in a forked child)."""
    global _beater
    with _beater_lock:
        if _beater is None or _beater.pid != os.getpid():
            _beater = Beater()
        return _beater


# -- queued runs that no task will pick up ------------------------------------------------------

# `tasks.execute_run`'s path, as the database backend stores it (tasks imports this module).
EXECUTE_RUN_PATH = "orchestration.runtime.tasks.execute_run"


def orphan_grace_seconds() -> float:
    return float(getattr(settings, "STEPWISE_ORPHAN_GRACE_SECONDS", 30.0))


def orphaned_runs(*, grace: float | None = None) -> list[Run]:
    """Queued runs, older than `grace` seconds, that no task will ever pick up: no task of
    theirs waits in the queue, and none was taken by a worker in the last `grace` seconds
    (a worker claims its run as its first step, so a taken task whose run is still queued
    after that long belongs to a worker that died)."""
    grace = orphan_grace_seconds() if grace is None else grace
    cutoff = timezone.now() - timedelta(seconds=grace)
    queued = list(
        Run.objects.filter(status=Run.Status.QUEUED, created_at__lt=cutoff)
        .select_related("thread")
        .order_by("created_at", "pk")
    )
    if not queued:
        return []
    live = _runs_with_live_tasks(cutoff)
    return [run for run in queued if _without_task(run, live)]


def unpicked_runs(*, grace: float | None = None) -> list[Run]:
    """`orphaned_runs`, and while no worker of runs beats (`workers.fresh_workers`) every
    queued run older than `grace`: its task waits in the queue, but nobody is there to take
    it (the only worker was killed). For the ops console: the sweeper must not re-queue
    these, their task is fine."""
    grace = orphan_grace_seconds() if grace is None else grace
    cutoff = timezone.now() - timedelta(seconds=grace)
    queued = list(
        Run.objects.filter(status=Run.Status.QUEUED, created_at__lt=cutoff)
        .select_related("thread")
        .order_by("created_at", "pk")
    )
    if not queued or not fresh_workers(queue=queues.RUNS):
        return queued
    live = _runs_with_live_tasks(cutoff)
    return [run for run in queued if _without_task(run, live)]


def is_orphaned(run: Run, *, grace: float | None = None) -> bool:
    grace = orphan_grace_seconds() if grace is None else grace
    cutoff = timezone.now() - timedelta(seconds=grace)
    if run.status != Run.Status.QUEUED or run.created_at >= cutoff:
        return False
    return _without_task(run, _runs_with_live_tasks(cutoff))


def _without_task(run: Run, live: set[int] | None) -> bool:
    if live is None:  # another Tasks backend: only a task id that was never recorded tells
        return not run.task_result_id
    return run.pk not in live


def _runs_with_live_tasks(cutoff: datetime) -> set[int] | None:
    """Run ids of `execute_run` tasks still waiting or recently taken; None when the Tasks
    backend does not keep its tasks in this database."""
    if not isinstance(task_backends["default"], DatabaseBackend):
        return None
    rows = DBTaskResult.objects.filter(task_path=EXECUTE_RUN_PATH).filter(
        Q(status=TaskResultStatus.READY)
        | Q(status=TaskResultStatus.RUNNING, started_at__gte=cutoff)
    )
    ids: set[int] = set()
    for args_kwargs in rows.values_list("args_kwargs", flat=True):
        args = args_kwargs.get("args") if isinstance(args_kwargs, dict) else None
        if args and isinstance(args[0], int):
            ids.add(args[0])
    return ids
