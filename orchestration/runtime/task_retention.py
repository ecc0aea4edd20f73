"""Retention of finished task rows: django-tasks-db keeps a row for every task it ran (each
run's execution, webhook delivery, e-mail), succeeded or failed, for ever. They are the
queue's bookkeeping, not the audit trail (runs, events, decisions and webhook deliveries keep
what happened), so rows finished more than STEPWISE_TASK_RESULTS_KEEP_DAYS ago (14, as the
library's own `prune_db_task_results`) are deleted by the sweeper (`resume_stalled --prune`).

They go in batches, each its own transaction (`batchdelete`). A row still ready or running is
never touched, whatever its age.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from orchestration.runtime.batchdelete import BATCH, delete_in_batches

__all__ = ["prune_task_results", "task_results_keep_days"]

FINISHED = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)


def task_results_keep_days() -> float | None:
    """STEPWISE_TASK_RESULTS_KEEP_DAYS: 14 by default; None (or "") keeps every row."""
    value = getattr(settings, "STEPWISE_TASK_RESULTS_KEEP_DAYS", 14)
    return None if value in (None, "") else float(value)


def prune_task_results(*, older_than: dt.timedelta, dry_run: bool = False,
                       batch: int = BATCH) -> int:
    """Delete the task rows that finished more than `older_than` ago; how many (would) go."""
    cutoff = timezone.now() - older_than
    old = DBTaskResult.objects.filter(status__in=FINISHED, finished_at__lt=cutoff)
    if dry_run:
        return old.count()
    return delete_in_batches(old, batch)
