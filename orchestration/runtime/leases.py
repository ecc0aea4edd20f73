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
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from orchestration.runtime.errors import LeaseLost
from orchestration.runtime.models import Run, Thread

__all__ = [
    "Heartbeat", "Lease", "LeaseLost", "claim", "expired_runs", "lease_seconds",
    "revoke_expired_lease", "worker_id",
]

logger = logging.getLogger(__name__)


def lease_seconds() -> float:
    return float(getattr(settings, "STEPWISE_LEASE_SECONDS", 30.0))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Lease:
    run_id: int
    token: str
    seconds: float
    lost: threading.Event = field(default_factory=threading.Event)

    def expiry(self) -> datetime:
        return timezone.now() + timedelta(seconds=self.seconds)

    def renew(self) -> bool:
        now = timezone.now()
        renewed = Run.objects.filter(
            pk=self.run_id, lease_token=self.token, status=Run.Status.RUNNING
        ).update(lease_expires_at=self.expiry(), heartbeat_at=now)
        if not renewed:
            self.lost.set()
        return bool(renewed)

    def fence(self) -> None:
        """Called by the saver inside each write transaction, before it writes: proves this
        worker still holds the run (and extends the lease) or aborts the write."""
        if self.lost.is_set() or not self.renew():
            raise LeaseLost(self.run_id, self.token)


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
    """Renews the lease every third of its length while the graph runs, in a daemon thread
    with its own database connection. Stops on its own once the lease is lost."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"stepwise-heartbeat-{lease.run_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.lease.seconds)

    def _loop(self) -> None:
        interval = max(self.lease.seconds / 3, 0.05)
        try:
            while not self._stop.wait(interval):
                try:
                    if not self.lease.renew():
                        logger.warning("run %s: lease lost, heartbeat stops", self.lease.run_id)
                        return
                except Exception:
                    # A locked or briefly unreachable database: try again next beat; the
                    # lease has two more beats of slack before it expires.
                    logger.warning("run %s: heartbeat failed", self.lease.run_id, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()
