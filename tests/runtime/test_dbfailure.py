"""A database that goes away under a worker: the run stalls and is resumed, never failed;
the worker process waits for the database instead of exiting. PostgreSQL only (a backend is
terminated, as a restart does); the chaos soak (test_soak.py) restarts a whole cluster.

Before the fix, the short soak lost a thread this way: PostgreSQL restarted while a worker
committed a run's pause, the worker recorded the run as failed a second later on a fresh
connection, and nothing ever resumed a failed run.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django_tasks_db.models import DBTaskResult
from runtime_helpers import TEST_GRAPHS, log_lines, wait_for_status

from orchestration.runtime.dbfailure import database_unavailable
from orchestration.runtime.healing import AUTO_RESUMED
from orchestration.runtime.models import Event, Run, Thread
from orchestration.runtime.runs import start_thread

GRAPHS = {**TEST_GRAPHS, "db_blip": "dbfailure_graphs:graph"}
# the worker runs as in production: PostgreSQL connections from a pool, woken by NOTIFY
WORKER_ENV = {
    "STEPWISE_EXTRA_GRAPHS": ",".join(f"{k}={v}" for k, v in GRAPHS.items()),
    "STEPWISE_DB_POOL_MAX": "4",
}


@pytest.fixture
def postgres(transactional_db: None, settings: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("terminates PostgreSQL backends (bin/test's PostgreSQL pass runs it)")
    settings.STEPWISE_GRAPHS = {**settings.STEPWISE_GRAPHS, **GRAPHS}
    settings.STEPWISE_STALL_POLICY = {"default": {"max_attempts": 3, "backoff_seconds": 0}}


def test_a_run_that_loses_its_database_stalls_and_the_sweeper_finishes_it(
    postgres: None, start_worker: Any, tmp_path: Path,
) -> None:
    log, marker = tmp_path / "nodes.log", tmp_path / "blipped"
    worker = start_worker("stepwise_worker", **WORKER_ENV)
    run = start_thread("db_blip", {"log": str(log), "marker": str(marker)}, user=None)

    # not failed: stalled, under the worker's lease, with the error named on its history
    wait_for_status(run, Run.Status.STALLED, workers=[worker])
    run.refresh_from_db()
    assert run.thread.status == Thread.Status.STALLED
    assert "OperationalError" in run.error and not run.lease_token
    stalled = Event.objects.get(run=run, kind="run_stalled")
    assert stalled.data["database_error"] is True
    assert "terminating connection" in stalled.reason
    assert not Event.objects.filter(run=run, kind="run_failed").exists()

    out = StringIO()
    call_command("resume_stalled", "--auto", stdout=out, stderr=out)
    assert "resumed run" in out.getvalue()
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[worker])
    assert Event.objects.filter(run=run, kind=AUTO_RESUMED).count() == 1
    assert log_lines(log) == ["write", "write", "last"]  # the failed write, again, then on
    run.refresh_from_db()
    assert run.error == "" and run.attempts == 2


def test_a_worker_outlives_its_database_connections(
    postgres: None, start_worker: Any, tmp_path: Path,
) -> None:
    """Every connection of the worker is cut while it idles (its pooled ones, its LISTEN
    one): it stays up and runs the next run. A worker that exited would stop a whole
    `bin/serve` (honcho stops every process when one exits)."""
    worker = start_worker("stepwise_worker", **WORKER_ENV)
    log = tmp_path / "nodes.log"
    first = start_thread("db_blip", {"log": str(log), "marker": str(tmp_path / "m1")}, user=None)
    (tmp_path / "m1").touch()  # no blip in the node: only the connections are cut
    wait_for_status(first, Run.Status.SUCCEEDED, workers=[worker])

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchone()[0] >= 1

    second = start_thread("db_blip", {"log": str(log), "marker": str(tmp_path / "m1")},
                          user=None)
    wait_for_status(second, Run.Status.SUCCEEDED, workers=[worker], timeout=30)
    assert worker.process.poll() is None
    assert not DBTaskResult.objects.filter(status="FAILED").exists()


def test_only_an_unreachable_database_counts_as_not_the_runs_fault() -> None:
    from django.db import IntegrityError, InterfaceError, OperationalError

    assert database_unavailable(OperationalError("server closed the connection"))
    assert database_unavailable(InterfaceError("connection already closed"))
    try:
        try:
            raise OperationalError("terminating connection due to administrator command")
        except OperationalError as exc:
            raise RuntimeError("node write failed") from exc
    except RuntimeError as wrapped:
        assert database_unavailable(wrapped)  # a node's wrapper around it
    assert not database_unavailable(IntegrityError("duplicate key"))
    assert not database_unavailable(ValueError("bad input"))
