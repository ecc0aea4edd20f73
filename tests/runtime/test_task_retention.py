"""The task queue's finished rows are deleted by the sweeper once they are old enough, in
batches; rows still ready or running never are. And the sweeper's reads of the rows in a
worker's hands come from an index, however many rows have finished."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from orchestration.runtime import leases
from orchestration.runtime.lost_tasks import lost_rows
from orchestration.runtime.task_retention import prune_task_results

pytestmark = pytest.mark.django_db


def task_row(status: str, finished_days_ago: float | None, **fields: Any) -> DBTaskResult:
    now = timezone.now()
    finished = None if finished_days_ago is None else now - timedelta(days=finished_days_ago)
    return DBTaskResult.objects.create(
        id=uuid.uuid4(), status=status, task_path="approvals.api.webhooks.deliver_webhook",
        args_kwargs={"args": [1], "kwargs": {}}, queue_name="default", backend_name="default",
        priority=0, run_after=now - timedelta(days=60), enqueued_at=now - timedelta(days=60),
        started_at=None if status == "READY" else now - timedelta(days=60),
        finished_at=finished, worker_ids=["host:1"], **fields)


def test_the_sweeper_deletes_finished_rows_past_the_age_and_keeps_the_rest(settings) -> None:
    settings.STEPWISE_TASK_RESULTS_KEEP_DAYS = "14"
    old = [task_row("SUCCESSFUL", 20), task_row("FAILED", 15), task_row("SUCCESSFUL", 400)]
    kept = [task_row("SUCCESSFUL", 13), task_row("FAILED", 1),
            task_row("READY", None), task_row("RUNNING", None)]
    out = StringIO()
    call_command("resume_stalled", "--prune", "--dry-run", stdout=out)
    assert "would delete 3 task row(s) finished more than 14 day(s) ago" in out.getvalue()
    assert DBTaskResult.objects.count() == 7
    call_command("resume_stalled", "--prune", stdout=out)
    assert "deleted 3 task row(s)" in out.getvalue()
    assert set(DBTaskResult.objects.values_list("pk", flat=True)) == {r.pk for r in kept}
    assert not DBTaskResult.objects.filter(pk__in=[r.pk for r in old]).exists()


def test_without_an_age_every_row_is_kept(settings) -> None:
    settings.STEPWISE_TASK_RESULTS_KEEP_DAYS = ""
    task_row("SUCCESSFUL", 400)
    out = StringIO()
    call_command("resume_stalled", "--prune", stdout=out)
    assert "task row" not in out.getvalue()
    assert DBTaskResult.objects.count() == 1


def test_rows_go_in_batches_until_none_is_left() -> None:
    for _ in range(7):
        task_row("SUCCESSFUL", 30)
    task_row("SUCCESSFUL", 1)
    with CaptureQueriesContext(connection) as seen:
        assert prune_task_results(older_than=timedelta(days=14), batch=3) == 7
    deletes = [q for q in seen.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 3 + 3 + 1
    assert DBTaskResult.objects.count() == 1


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            return " ".join(str(row[-1]) for row in cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return " ".join(row[0] for row in cursor.fetchall())


def test_the_sweepers_reads_of_rows_in_hand_use_an_index() -> None:
    """The library indexes ready rows only: the sweeper's reads of running ones (every pass)
    read every row ever finished (300,000: 66 ms a pass) until migration 0015's index."""
    table = DBTaskResult._meta.db_table
    with CaptureQueriesContext(connection) as seen:
        lost_rows()
        leases._runs_with_live_tasks(timezone.now())
    reads = [q["sql"] for q in seen.captured_queries if table in q["sql"]]
    assert len(reads) == 2
    for sql in reads:
        plan = _plan(sql)
        if connection.vendor == "sqlite":
            assert f"SCAN {table}" not in plan.replace(f"SCAN {table} USING INDEX", ""), plan
        else:
            assert f"Seq Scan on {table}" not in plan, plan
