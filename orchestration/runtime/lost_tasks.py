"""Task rows whose worker died: finished as `WorkerLost`, and their work queued again where it
must still happen.

django-tasks-db finishes a row only from the worker that ran it, so a SIGKILLed worker leaves
its row RUNNING forever, and the row's work (a webhook delivery, an e-mail) never happens. A
run's execution has a lease: the sweeper queues the run again and `runs.finish_lost_task`
finishes the old row. Every other task is judged by its worker's heartbeat
(`workers.WorkerBeat`, under the id the worker claims rows with): the sweeper
(`resume_stalled`, every pass) takes a RUNNING row as lost when the worker that claimed it

- stopped beating (not seen for `workers.stale_after_seconds()`, a lease by default),
- stopped cleanly (a clean stop finishes its task first), or
- was replaced by a later process under the same id (a restarted container: same host, pid).

A row claimed by a worker that never beat (a plain `db_worker`) is left alone: nothing tells
whether it lives.

A lost row becomes FAILED with `WorkerLost`, and if its task was declared with
`retry_when_worker_lost` it is enqueued again exactly as it was (same task, arguments, queue,
priority, backend), in the same transaction, conditional on the row still being RUNNING: two
sweepers, or a worker that was only slow, never make two copies. Such a task must be safe to
run twice (the dead worker may have done part or all of it before it died): the webhook
delivery sends the same stored body with the same `Stepwise-Event-Id`, and the e-mails carry
the same Message-ID, so the receiver sees one event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from traceback import format_exception
from typing import Any

from django.db import transaction
from django.tasks import Task, TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from orchestration.runtime import metrics
from orchestration.runtime.errors import WorkerLost
from orchestration.runtime.leases import EXECUTE_RUN_PATH
from orchestration.runtime.models import Run, WorkerProcess
from orchestration.runtime.workers import stale_after_seconds

__all__ = ["LostTask", "lost_rows", "mark_lost", "recover", "retry_when_worker_lost",
           "sweep_lost_tasks"]

logger = logging.getLogger(__name__)

# Task paths (`Task.module_path`) whose work is queued again when their worker is lost.
RETRY_WHEN_LOST: set[str] = set()
_ACTIVE_RUN = (Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.STALLED)


def retry_when_worker_lost[T: Task[Any, Any]](task: T) -> T:
    """Declare that `task`'s work must still happen if the worker running it dies: the
    sweeper enqueues it again with the same arguments. Only for a task whose second run the
    receiver sees as the first (an idempotency key, a state check before the side effect)."""
    RETRY_WHEN_LOST.add(task.module_path)
    return task


@dataclass(frozen=True, slots=True)
class LostTask:
    task_id: str
    task_path: str
    worker: str
    outcome: str  # "requeued", "failed"
    detail: str


def mark_lost(task_id: Any, outcome: str, *, task_path: str | None = None) -> bool:
    """Finish the RUNNING row `task_id` as FAILED with `WorkerLost("worker lost; <outcome>")`;
    False if it is not RUNNING (any more). The library's own `set_failed`, made conditional:
    a row its worker finished meanwhile keeps its result."""
    rows = DBTaskResult.objects.filter(pk=task_id, status=TaskResultStatus.RUNNING)
    if task_path is not None:
        rows = rows.filter(task_path=task_path)
    error = WorkerLost(f"worker lost; {outcome}")
    return bool(rows.update(
        status=TaskResultStatus.FAILED, finished_at=timezone.now(), return_value=None,
        exception_class_path=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
        traceback="".join(format_exception(error)),
    ))


def lost_rows(now: datetime | None = None) -> list[tuple[DBTaskResult, str]]:
    """RUNNING rows whose worker is gone, each with why it is taken as gone."""
    rows = list(DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING))
    claimants = {row.worker_ids[-1] for row in rows if row.worker_ids}
    if not claimants:
        return []
    workers = {w.worker_id: w for w in WorkerProcess.objects.filter(worker_id__in=claimants)}
    cutoff = (now or timezone.now()) - timedelta(seconds=stale_after_seconds())
    found = []
    for row in rows:
        worker = workers.get(row.worker_ids[-1]) if row.worker_ids else None
        why = _gone(row, worker, cutoff)
        if why:
            found.append((row, why))
    return found


def _gone(row: DBTaskResult, worker: WorkerProcess | None, cutoff: datetime) -> str:
    if worker is None:  # never beat (a plain db_worker): nothing says it died
        return ""
    if row.started_at is not None and worker.started_at > row.started_at:
        return f"worker {worker.worker_id} restarted after it took the task"
    if worker.stopped_at is not None:
        return f"worker {worker.worker_id} stopped without finishing the task"
    if worker.last_seen_at < cutoff:
        return f"worker {worker.worker_id} not seen since {worker.last_seen_at:%H:%M:%S}"
    return ""


def recover(row: DBTaskResult, why: str) -> LostTask | None:
    """Finish the lost `row` and, if its task is declared `retry_when_worker_lost`, enqueue
    it again, in one transaction. None if there is nothing to do (yet): the row was finished
    meanwhile, or it is a run's execution that its lease decides."""
    worker = row.worker_ids[-1] if row.worker_ids else "?"
    if row.task_path == EXECUTE_RUN_PATH:
        detail = _run_already_decided(row)
        if detail is None or not mark_lost(row.pk, f"{why}; {detail}"):
            return None
        return _counted(LostTask(str(row.pk), row.task_path, worker, "failed", detail))
    with transaction.atomic():
        again = _enqueue_again(row)
        detail = (f"re-enqueued as task {again}" if again else
                  f"not re-enqueued ({row.task_path} is not declared retry_when_worker_lost)")
        if not mark_lost(row.pk, f"{why}; {detail}"):
            transaction.set_rollback(True)  # finished meanwhile: the copy goes too
            return None
    return _counted(LostTask(str(row.pk), row.task_path, worker,
                             "requeued" if again else "failed", detail))


def _run_already_decided(row: DBTaskResult) -> str | None:
    """For a run's execution: None while the run's lease decides (the run sweep re-queues it
    and finishes this row); otherwise why there is nothing to redo."""
    args = row.args_kwargs.get("args") if isinstance(row.args_kwargs, dict) else None
    run_id = args[0] if args else None
    run = Run.objects.filter(pk=run_id).values("status", "task_result_id").first() \
        if isinstance(run_id, int) else None
    if run is None:
        return "no such run: nothing to redo"
    if run["task_result_id"] != str(row.pk):
        return f"run {run_id} went on under task {run['task_result_id'] or '?'}"
    if run["status"] in _ACTIVE_RUN:
        return None
    return f"run {run_id} is already {run['status']}: nothing to redo"


def _enqueue_again(row: DBTaskResult) -> str:
    """The same task with the same arguments, queue, priority and backend; "" if the task is
    not declared retryable or the row cannot be read back into a task."""
    try:
        task = row.task  # imports the task's module, which declares it
        args, kwargs = row.args_kwargs["args"], row.args_kwargs["kwargs"]
    except Exception:  # noqa: BLE001 - an unreadable row is finished, not re-run
        logger.warning("task %s (%s) cannot be read back; not re-enqueued", row.pk,
                       row.task_path, exc_info=True)
        return ""
    if task.module_path not in RETRY_WHEN_LOST:
        return ""
    return str(task.enqueue(*args, **kwargs).id)


def _counted(lost: LostTask) -> LostTask:
    metrics.TASKS_LOST.labels(lost.task_path, lost.outcome).inc()
    logger.warning("task %s (%s) of lost worker %s: %s", lost.task_id, lost.task_path,
                   lost.worker, lost.detail,
                   extra={"task_id": lost.task_id, "task_path": lost.task_path,
                          "worker_id": lost.worker})
    return lost


def sweep_lost_tasks(now: datetime | None = None) -> list[LostTask]:
    """One pass of the sweeper: every lost row recovered (one bad row does not stop it)."""
    done = []
    for row, why in lost_rows(now):
        try:
            lost = recover(row, why)
        except Exception:  # noqa: BLE001 - the next pass tries this row again
            logger.exception("task %s (%s): could not recover it", row.pk, row.task_path)
            continue
        if lost is not None:
            done.append(lost)
    return done
