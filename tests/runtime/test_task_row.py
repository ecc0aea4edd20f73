"""A run's task row written by `taskrow.insert_task` (one statement on PostgreSQL) is the row
django-tasks-db's `enqueue` writes, the run points at it, and the workers' wake-up is sent
with the transaction's commit, never for a rolled-back one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from orchestration.runtime.models import Run
from orchestration.runtime.runs import start_thread
from orchestration.runtime.tasks import execute_run
from orchestration.runtime.wakeup import CHANNEL

pytestmark = pytest.mark.django_db(transaction=True)

EXPENSE = {"expense_id": 7, "employee": "Ann", "vendor": "Rail", "amount": 120,
           "currency": "EUR", "description": "train"}
# every column but the two a second enqueue makes anew
SAME = [f.attname for f in DBTaskResult._meta.concrete_fields
        if f.attname not in ("id", "enqueued_at")]


def _row(pk: Any) -> dict[str, Any]:
    return DBTaskResult.objects.filter(pk=pk).values(*SAME, "enqueued_at").get()


def test_queued_run_gets_the_row_the_tasks_api_would_write() -> None:
    before = timezone.now()
    run = start_thread("expense", EXPENSE, user=None)
    run.refresh_from_db()
    ours = _row(run.task_result_id)
    assert ours["enqueued_at"] >= before - timedelta(seconds=1)
    assert ours["args_kwargs"] == {"args": [run.pk], "kwargs": {}}
    # the same task through django-tasks-db's own enqueue, for the same run
    theirs = _row(execute_run.enqueue(run.pk).id)
    assert {k: ours[k] for k in SAME} == {k: theirs[k] for k in SAME}
    # and the backend reads ours back as a task result of `execute_run` for this run
    result = execute_run.get_result(run.task_result_id)
    assert result.args == [run.pk] and result.task.module_path == execute_run.module_path
    assert result.task.run_after is None


def test_a_rolled_back_queueing_leaves_no_task_and_no_run() -> None:
    tasks = DBTaskResult.objects.count()

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        start_thread("expense", EXPENSE, user=None)
        assert DBTaskResult.objects.count() == tasks + 1
        raise Undo
    assert DBTaskResult.objects.count() == tasks
    assert not Run.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_workers_are_woken_at_commit_and_not_for_a_rollback() -> None:
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")

        def heard() -> list[str]:
            return [n.payload for n in listener.notifies(timeout=0.5, stop_after=1)]

        class Undo(Exception):
            pass

        with pytest.raises(Undo), transaction.atomic():
            start_thread("expense", EXPENSE, user=None)
            assert heard() == []  # not before the commit
            raise Undo
        assert heard() == []  # nor after a rollback
        start_thread("expense", EXPENSE, user=None)
        assert heard() == [execute_run.queue_name]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement on PostgreSQL")
def test_task_row_run_pointer_and_wake_up_are_the_starts_one_statement() -> None:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        run = start_thread("expense", EXPENSE, user=None)
    table = DBTaskResult._meta.db_table
    touching = [q["sql"] for q in captured if table in q["sql"] or "pg_notify" in q["sql"]
                or q["sql"].startswith("UPDATE") and "task_result_id" in q["sql"]]
    assert len(touching) == 1, touching
    # the start's own statement: the run is inserted pointing at its task row (no update)
    assert "pg_notify" in touching[0] and "SET task_result_id" not in touching[0]
    assert touching[0].startswith("WITH th AS (INSERT INTO")
    run.refresh_from_db()
    assert DBTaskResult.objects.filter(pk=run.task_result_id).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_a_worker_of_runs_sleeps_through_a_notification_task() -> None:
    """Each queue has its own workers (runtime.queues): a webhook delivery wakes the `notify`
    workers, not every worker of runs for a claim that finds nothing."""
    from approvals.api.webhooks import deliver_webhook
    from orchestration.runtime.wakeup import Waiter

    runs_only, notify_only = Waiter(queues=["default"]), Waiter(queues=["notify"])
    try:
        deliver_webhook.enqueue(0)  # committed at once: this test is transactional
        assert notify_only.wait(5) is True
        assert runs_only.wait(0.5) is False
        start_thread("expense", EXPENSE, user=None)
        assert runs_only.wait(5) is True
        assert notify_only.wait(0.5) is False
    finally:
        runs_only.close()
        notify_only.close()
