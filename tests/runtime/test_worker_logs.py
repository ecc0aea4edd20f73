"""A worker's log lines are JSON (LOG_FORMAT=json) and name the run and thread they are about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import wait_for_status

from orchestration.runtime.models import Run
from orchestration.runtime.runs import start_thread

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_logs_json_lines_with_the_run_and_thread(start_worker: Any, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    worker = start_worker("stepwise_worker", LOG_FORMAT="json", LOG_LEVEL="INFO")
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(gate)}, user=None)
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[worker])
    worker.stop()
    lines = [json.loads(line) for line in worker.output().splitlines()
             if line.startswith("{")]
    assert lines, worker.output()[-2000:]
    about_run = [line for line in lines if line.get("run_id") == run.pk]
    assert any(line["message"] == f"run {run.pk}: succeeded" for line in about_run)
    assert {line["thread_id"] for line in about_run} == {run.thread.thread_id}
    assert all({"time", "level", "logger", "pid", "message"} <= set(line) for line in lines)
