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


@pytest.mark.parametrize("tasks_level", ["", "INFO"])
def test_per_task_lines_only_when_asked(start_worker: Any, tmp_path: Path,
                                        tasks_level: str) -> None:
    """Django's "Task id=... state=..." lines (two per task) are left out at the default
    TASKS_LOG_LEVEL; the run's own end line stays. TASKS_LOG_LEVEL=INFO brings them back."""
    env = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    if tasks_level:
        env["TASKS_LOG_LEVEL"] = tasks_level
    worker = start_worker("stepwise_worker", **env)
    gate = tmp_path / "gate"
    gate.touch()
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(gate)}, user=None)
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[worker])
    worker.stop()
    lines = [json.loads(line) for line in worker.output().splitlines()
             if line.startswith("{")]
    per_task = [line for line in lines if line["logger"] == "django.tasks"]
    assert any(line["message"] == f"run {run.pk}: succeeded" for line in lines)
    assert any(line["message"].startswith("Starting worker") for line in lines)
    if tasks_level:
        assert any("state=SUCCESSFUL" in line["message"] for line in per_task), per_task
    else:
        assert per_task == []
