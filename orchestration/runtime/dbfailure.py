"""A run that lost its database mid-way stalls; it does not fail.

A run's attempt can end on an error that says nothing about the run: the database restarted,
failed over or dropped the connection (`OperationalError`, `InterfaceError`; a pool that
could not hand out a connection in time raises an `OperationalError` too). Recorded as the
run's failure, it would end the thread for good: a failed run is terminal, nobody resumes it
but ops. The soak found exactly that: PostgreSQL restarted while a worker committed a run's
pause, the worker recorded "failed" a second later on a fresh connection, and the thread
never reached its review.

So `tasks.execute_run` hands such an attempt to `stall_after_database_error`: the run becomes
stalled under this worker's lease, with a `run_stalled` event that names the error, and the
sweeper (`resume_stalled --auto`, `healing`) resumes it within the graph's stall policy,
from its last checkpoint; an error that does not go away ends as "needs ops" after the
policy's attempts, never in a loop. If the database is still unreachable the stall cannot be
written either: then nothing is, this worker's lease runs out and the sweeper stalls the run
as it does for a worker that died. Either way the run continues; nothing is lost or done
twice (the checkpoints, the fence on the lease, idempotent side effects).

Errors of the run's own making (`IntegrityError`, `DataError`, `ProgrammingError`, anything
else) still fail it, as before.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from orchestration.runtime import metrics
from orchestration.runtime.events import publish
from orchestration.runtime.leases import Lease, worker_id
from orchestration.runtime.models import Run, Thread

__all__ = ["database_unavailable", "drop_broken_connection", "stall_after_database_error"]

logger = logging.getLogger(__name__)

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
try:  # a write done with psycopg directly (not through the ORM) raises its own classes
    import psycopg

    _CONNECTION_ERRORS += (psycopg.OperationalError, psycopg.InterfaceError)
except ImportError:  # pragma: no cover - SQLite-only installs
    pass


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from or while handling (a node's or the
    engine's wrapper around it), is the database being unreachable rather than the run's
    fault."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _CONNECTION_ERRORS):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def stall_after_database_error(run: Run, lease: Lease, exc: BaseException) -> dict[str, Any]:
    """Running -> stalled under this worker's lease, for the sweeper to resume; the result of
    the task. Called after the run's heartbeat stopped."""
    error = f"{type(exc).__name__}: {exc}".strip()
    logger.warning("run %s: the database failed under it (%s); it stalls and the sweeper "
                   "resumes it", run.pk, error)
    drop_broken_connection()
    try:
        with transaction.atomic():
            stalled = Run.objects.filter(
                pk=run.pk, lease_token=lease.token, status=Run.Status.RUNNING
            ).update(status=Run.Status.STALLED, lease_token="", lease_expires_at=None,
                     error=error[:10_000])
            if not stalled:  # the sweeper took it meanwhile: whoever has it now keeps it
                return {"run_id": run.pk, "outcome": "lease_lost", "error": error}
            Thread.objects.filter(pk=run.thread_id).update(
                status=Thread.Status.STALLED, updated_at=timezone.now()
            )
            run.refresh_from_db()
            publish("run_stalled", run=run, reason=f"database error: {error}"[:2000],
                    data={"worker": worker_id(), "attempts": run.attempts,
                          "database_error": True})
            transaction.on_commit(metrics.RUNS_STALLED.inc)
    except DatabaseError:
        # Still unreachable: write nothing. The lease (no longer renewed) expires and the
        # sweeper stalls the run then, as for a worker that died.
        logger.warning("run %s: could not record the stall either; it stalls when its lease "
                       "expires", run.pk, exc_info=True)
        drop_broken_connection()
        return {"run_id": run.pk, "outcome": "database_unavailable", "error": error}
    return {"run_id": run.pk, "outcome": "stalled", "error": error}


def drop_broken_connection() -> None:
    """Close this thread's connection if the failure broke it, so the next query opens (or
    borrows from the pool) a working one. A usable one is kept: a test's transaction lives
    on it."""
    if connection.connection is None or connection.in_atomic_block:
        return
    if not connection.is_usable():
        connection.close()
