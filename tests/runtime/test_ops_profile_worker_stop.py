"""A worker's clean stop is recorded on its `WorkerProcess` row whether it was busy or idle.

Found in an ops trial on PostgreSQL: SIGTERM to an idle worker ("idle, exiting") left
`stopped_at` empty, since the signal handler's `os._exit` skipped `WorkerBeat`'s exit; the row
then looked like a worker that died (until its beat went stale it even counted as alive).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import Worker, wait_for, wait_for_status

from orchestration.runtime.models import Run, WorkerProcess
from orchestration.runtime.runs import start_thread

pytestmark = pytest.mark.django_db(transaction=True)


def row_of(worker: Worker) -> WorkerProcess | None:
    return WorkerProcess.objects.filter(pid=worker.pid).first()


def test_an_idle_worker_stopped_by_sigterm_records_stopped_at(
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_worker("stepwise_worker", interval=5)  # idle in its wait, not polling
    row = wait_for(lambda: row_of(worker), timeout=60, what="the worker's row",
                   workers=[worker])
    assert row.stopped_at is None
    wait_for(lambda: "Starting worker" in worker.output(), timeout=30, what="the loop to start",
             workers=[worker])
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=20) == 0
    assert "idle, exiting" in worker.output()
    row = WorkerProcess.objects.get(pk=row.pk)
    assert row.stopped_at is not None, worker.output()
    assert row.stopped_at >= row.last_seen_at


def test_a_worker_stopped_after_running_a_task_records_stopped_at(
    start_worker: Callable[..., Worker], tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    worker = start_worker("stepwise_worker", interval=0.2)
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(gate)}, user=None)
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[worker])
    row: Any = wait_for(lambda: row_of(worker), timeout=10, what="the worker's row")
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=20) == 0
    assert WorkerProcess.objects.get(pk=row.pk).stopped_at is not None, worker.output()
