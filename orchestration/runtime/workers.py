"""Worker processes say they are alive: one `WorkerProcess` row each, renewed by a daemon
thread every `beat_seconds()` whether the worker is busy or idle.

A run's lease says "this run is being worked on"; the worker heartbeat says "there is a
worker at all". `/readyz` needs the second (a pool with no live worker accepts decisions
that nobody will carry on), and so does the `stepwise_worker_*` metrics.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Count, F, Q
from django.utils import timezone

from orchestration.runtime import metrics
from orchestration.runtime.models import WorkerProcess

__all__ = ["WorkerBeat", "beat_seconds", "fresh_workers", "stale_after_seconds", "taking",
           "unserved_queues"]

logger = logging.getLogger(__name__)


def beat_seconds() -> float:
    """How often a worker says it is alive: a third of a lease, like a run's heartbeat, so a
    dead worker is visible as soon as a lease of its would expire."""
    lease = float(getattr(settings, "STEPWISE_LEASE_SECONDS", 30.0))
    return max(lease / 3, 0.2)


def stale_after_seconds() -> float:
    """A worker not seen for this long is counted as gone (three missed beats)."""
    return float(getattr(settings, "STEPWISE_WORKER_STALE_SECONDS", 0) or beat_seconds() * 3)


def fresh_workers(max_age: float | None = None, *, queue: str | None = None) -> int:
    """Live worker processes (of those taking `queue`, when given)."""
    age = stale_after_seconds() if max_age is None else max_age
    cutoff = timezone.now() - timedelta(seconds=age)
    live = WorkerProcess.objects.filter(last_seen_at__gte=cutoff, stopped_at__isnull=True)
    if queue is not None:
        live = live.filter(taking(queue))
    return live.count()


def unserved_queues() -> dict[str, int]:
    """{queue: tasks due now} for each queue with due tasks and no live worker taking it: a
    pool of run workers with no `notify` worker sends nothing, and nothing else says so."""
    from django_tasks_db.models import DBTaskResult

    due = dict(DBTaskResult.objects.ready().order_by().values_list("queue_name")
               .annotate(n=Count("pk")))
    return {queue: n for queue, n in sorted(due.items()) if not fresh_workers(queue=queue)}


def taking(queue: str) -> Q:
    """Workers whose `queues` ("*" or "a,b,c") include `queue`."""
    return (Q(queues="*") | Q(queues=queue) | Q(queues__startswith=f"{queue},")
            | Q(queues__endswith=f",{queue}") | Q(queues__contains=f",{queue},"))


class WorkerBeat:
    """`with WorkerBeat(worker_id): worker.run()`: registers the process, beats in a daemon
    thread with its own database connection, and records a clean stop on exit."""

    def __init__(self, worker_id: str, interval: float | None = None,
                 queues: Sequence[str] | None = None) -> None:
        self.worker_id = worker_id[:200]
        self.queues = "*" if queues is None or "*" in queues else ",".join(queues)[:200]
        self.interval = beat_seconds() if interval is None else interval
        self._stop = threading.Event()
        self._stopped = threading.Event()  # the stop was recorded (or is being)
        self._thread = threading.Thread(target=self._loop, name="stepwise-worker-beat",
                                        daemon=True)

    def __enter__(self) -> WorkerBeat:
        now = timezone.now()
        WorkerProcess.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={"hostname": socket.gethostname()[:200], "pid": os.getpid(),
                      "started_at": now, "last_seen_at": now, "stopped_at": None, "beats": 0,
                      "queues": self.queues},
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop beating and record the clean stop (`stopped_at`), once. The beat thread is
        joined first: a beat committed after the stop would clear `stopped_at` again."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval + 1)
        try:
            WorkerProcess.objects.filter(worker_id=self.worker_id).update(
                stopped_at=timezone.now()
            )
        except Exception:  # noqa: BLE001 - shutting down; the beat simply goes stale
            logger.warning("could not record the stop of worker %s", self.worker_id,
                           exc_info=True)

    def stop_from_signal_handler(self, timeout: float = 3.0) -> None:
        """`stop` from a signal handler of a process about to `os._exit` (an idle worker's
        SIGTERM): in a thread of its own, with its own database connection, since the main
        thread may have been interrupted in the middle of using its connection; waited for
        at most `timeout` seconds (a process manager's kill timeout is not much longer)."""

        def record() -> None:
            try:
                self.stop()
            finally:
                connection.close()

        thread = threading.Thread(target=record, name="stepwise-worker-stop", daemon=True)
        thread.start()
        thread.join(timeout=timeout)

    def beat(self) -> bool:
        seen = WorkerProcess.objects.filter(worker_id=self.worker_id).update(
            last_seen_at=timezone.now(), beats=F("beats") + 1, stopped_at=None
        )
        metrics.WORKER_HEARTBEATS.inc()
        return bool(seen)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.beat()
                except Exception:  # noqa: BLE001
                    # the database restarting: the next beat reconnects
                    logger.warning("worker %s: heartbeat failed", self.worker_id,
                                   exc_info=True)
                    close_old_connections()
                    connection.close()
        finally:
            connection.close()
