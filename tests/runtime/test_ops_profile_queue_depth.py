"""`stepwise_task_queue_depth`: tasks due now, per queue, 0 for a known queue with none.

Found in an ops trial: the gauge ("tasks waiting for a worker") counted READY rows due later
(a webhook delivery's retry in an hour) as waiting, so a queue-depth alert fired on an idle,
healthy pool; and with no row at all the default queue had no series (an alert on it had no
value, a graph ended instead of dropping to 0).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from orchestration.runtime.metrics import DatabaseCollector

pytestmark = pytest.mark.django_db


def depth() -> dict[str, float]:
    family = next(m for m in DatabaseCollector().collect()
                  if m.name == "stepwise_task_queue_depth")
    return {sample.labels["queue"]: sample.value for sample in family.samples}


def task_row(queue: str = "default", *, run_after: Any = None, status: str = "READY") -> None:
    DBTaskResult.objects.create(
        task_path="orchestration.runtime.tasks.execute_run", args_kwargs={"args": [], "kwargs": {}},
        queue_name=queue, backend_name="default", status=status,
        run_after=run_after if run_after is not None else get_date_max(),
    )


def test_an_empty_queue_is_a_zero_not_a_missing_series() -> None:
    assert depth() == {"default": 0, "notify": 0}


def test_only_tasks_due_now_are_waiting(settings: Any) -> None:
    now = timezone.now()
    task_row()                                            # no run_after: due now
    task_row(run_after=now - timedelta(seconds=5))        # due a moment ago
    task_row(run_after=now + timedelta(hours=1))          # a webhook retry, due later
    task_row(run_after=now + timedelta(minutes=5))
    task_row(status="RUNNING")                            # being run: not waiting
    task_row("notify", run_after=now + timedelta(hours=1))  # another queue, nothing due
    assert depth() == {"default": 2, "notify": 0}


def test_every_configured_queue_has_a_series(settings: Any) -> None:
    # the pytest-django `settings` fixture sends setting_changed: Django reloads its backends
    settings.TASKS = {"default": {**settings.TASKS["default"], "QUEUES": ["default", "mail"]}}
    task_row("mail")
    assert depth() == {"default": 0, "mail": 1}
