"""The sweepers' lines are log records: a level, and the run's or review's ids.

Found in an ops trial on PostgreSQL (LOG_FORMAT=json): "stalled run 52 ...", "needs ops run
81 ...: gave up after 5 automatic resumes", "re-queued run ..." and "escalated overdue reviews
[...]" were written with `self.stdout.write`, so they were not in the JSON logs, had no level
to alert on and no `run_id` to search by.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from runtime_helpers import ROOT, subprocess_env, wait_for

from approvals.models import ReviewRequest
from orchestration.runtime import leases
from orchestration.runtime.logcontext import ContextFilter
from orchestration.runtime.models import Run
from orchestration.runtime.runs import start_thread

pytestmark = pytest.mark.django_db(transaction=True)


def abandoned(run: Run) -> None:
    """A worker takes the run and dies: its lease (0.05 s) is never renewed."""
    assert leases.claim(run.pk, seconds=0.05) is not None
    time.sleep(0.1)


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_the_watching_sweeper_logs_stalls_give_ups_and_requeues_as_json_with_run_ids(
    tmp_path: Path,
) -> None:
    args = {"log": str(tmp_path / "log"), "gate": ""}
    stalled = start_thread("steps", args, user=None)
    abandoned(stalled)
    orphan = start_thread("steps", args, user=None)  # queued, and its task row lost
    DBTaskResult.objects.filter(pk=orphan.task_result_id).delete()
    Run.objects.filter(pk=orphan.pk).update(
        created_at=timezone.now() - timezone.timedelta(minutes=5))

    env = subprocess_env() | {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
                              # one automatic resume at once, then "needs ops"
                              "STEPWISE_STALL_MAX_ATTEMPTS": "1",
                              "STEPWISE_STALL_BACKOFF_SECONDS": "0"}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    sweeper = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "resume_stalled", "--auto", "--watch", "0.3",
         "--orphan-grace", "1"],
        cwd=ROOT, env=env, stdout=out.open("wb"), stderr=err.open("wb"),
    )

    def logged(prefix: str) -> dict[str, Any] | None:
        return next((line for line in json_lines(err) if line["message"].startswith(prefix)),
                    None)

    try:
        resumed = wait_for(lambda: logged(f"resumed run {stalled.pk} "), timeout=60,
                           what="the automatic resume logged")
        abandoned(stalled)  # the next worker to take it dies too
        needs_ops = wait_for(lambda: logged(f"needs ops run {stalled.pk} "), timeout=60,
                             what="the give-up logged")
        requeued = wait_for(lambda: logged(f"re-queued run {orphan.pk} "), timeout=30,
                            what="the re-queue logged")
    finally:
        sweeper.send_signal(signal.SIGTERM)
        sweeper.wait(timeout=30)
    assert resumed["level"] == "INFO" and resumed["run_id"] == stalled.pk
    assert needs_ops["level"] == "ERROR"
    assert needs_ops["run_id"] == stalled.pk
    assert needs_ops["thread_id"] == stalled.thread.thread_id
    assert "gave up after 1 automatic resumes" in needs_ops["message"]
    assert needs_ops["outcome"] == "needs_ops"
    marked = logged(f"stalled run {stalled.pk} ")
    assert marked is not None and marked["level"] == "WARNING"
    assert marked["run_id"] == stalled.pk and marked["thread_id"] == stalled.thread.thread_id
    assert requeued["level"] == "WARNING" and requeued["run_id"] == orphan.pk
    assert requeued["thread_id"] == orphan.thread.thread_id
    # a --watch loop logs; it does not print the same lines again on stdout
    assert "run " not in out.read_text()


def test_a_dry_run_prints_readable_lines_and_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    abandoned(run)
    out = StringIO()
    with caplog.at_level(logging.DEBUG, logger="orchestration.runtime.management"):
        call_command("resume_stalled", "--dry-run", stdout=out)
    assert f"would resume run {run.pk} of thread {run.thread.thread_id}" in out.getvalue()
    assert not [r for r in caplog.records if r.name.endswith("resume_stalled")]
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING  # nothing changed


def test_a_single_sweep_prints_and_logs_with_the_run_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, settings: Any,
) -> None:
    settings.STEPWISE_STALL_POLICY = {"default": {"max_attempts": 3, "backoff_seconds": 0}}
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    abandoned(run)
    caplog.handler.addFilter(ContextFilter())
    out = StringIO()
    with caplog.at_level(logging.INFO):
        call_command("resume_stalled", "--auto", stdout=out)
    assert f"resumed run {run.pk}" in out.getvalue()  # the readable line for a person
    records = [r for r in caplog.records if r.name.endswith("resume_stalled")]
    resumed = next(r for r in records if r.getMessage().startswith(f"resumed run {run.pk}"))
    assert resumed.levelno == logging.INFO
    assert (resumed.run_id, resumed.thread_id) == (run.pk, run.thread.thread_id)
    stalled = next(r for r in records if r.getMessage().startswith(f"stalled run {run.pk}"))
    assert stalled.levelno == logging.WARNING and stalled.run_id == run.pk


def test_the_claims_sweeper_logs_each_escalation_with_its_review_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    review = ReviewRequest.objects.create(
        thread=run.thread, run=run, interrupt_id="i1", node="review", title="Late",
        payload={"kind": "review", "title": "Late", "data": {}, "actions": ["approve"]},
        due_at=timezone.now() - timezone.timedelta(minutes=1),
    )
    caplog.handler.addFilter(ContextFilter())
    out = StringIO()
    with caplog.at_level(logging.INFO):
        call_command("sweep_reviews", stdout=out)
    assert f"escalated overdue reviews [{review.pk}]" in out.getvalue()
    escalated = [r for r in caplog.records if "escalated overdue review" in r.getMessage()]
    assert len(escalated) == 1, [r.getMessage() for r in caplog.records]
    assert escalated[0].levelno == logging.WARNING
    assert escalated[0].review_id == review.pk
