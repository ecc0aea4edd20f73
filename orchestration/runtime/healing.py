"""Stalled runs heal themselves within their graph's policy (`registry.stall_policy`).

The sweeper (`manage.py resume_stalled --auto`) calls `heal_stalled()` after marking expired
leases stalled. For each stalled run of a graph that has not opted out:

- attempt n (1-based) is due `policy.delay(n)` seconds after the run last stalled or was
  last resumed, whichever is later; when due, the run is queued again and a
  `run_auto_resumed` event records the attempt (the run's history is the audit);
- a run whose re-queued task still waits for a worker is left alone (it is not stalled
  again, just queued), so a busy pool does not burn attempts;
- after `policy.max_attempts` automatic resumes, the next stall fails the run as "needs
  ops": status failed, a `run_needs_ops` event, and the `run_stalled` signal with
  `needs_ops=True` (the approvals app e-mails ops and sends the `run.stalled` webhook). The
  ops console lists these first; ops retry it (from its last checkpoint) or cancel it.

Attempts are counted from the run's events, not a column: two sweepers (two machines) lock
the run's row before counting, so an attempt is never taken twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from orchestration.runtime import metrics
from orchestration.runtime.events import publish
from orchestration.runtime.leases import EXECUTE_RUN_PATH
from orchestration.runtime.models import Event, Run, Thread
from orchestration.runtime.registry import StallPolicy, stall_policy
from orchestration.runtime.runs import finish_lost_task, resume_stalled
from orchestration.runtime.signals import run_stalled

__all__ = ["AUTO_RESUMED", "NEEDS_OPS", "Healed", "heal_stalled", "needs_ops_q"]

logger = logging.getLogger(__name__)

AUTO_RESUMED = "run_auto_resumed"
NEEDS_OPS = "run_needs_ops"
REQUEUED = "run_requeued"  # published whoever queues a stalled run again


@dataclass(frozen=True, slots=True)
class Healed:
    run_id: int
    thread_id: str
    outcome: str  # "resumed", "needs_ops", "waiting" (backoff), "queued" (task waits), "manual"
    attempt: int
    detail: str = ""


def needs_ops_q() -> Q:
    """Failed runs the sweeper gave up on that are still their thread's latest run."""
    gave_up = Event.objects.filter(run=OuterRef("pk"), kind=NEEDS_OPS)
    later = Run.objects.filter(thread=OuterRef("thread"), pk__gt=OuterRef("pk"))
    return Q(Exists(gave_up), ~Exists(later), status=Run.Status.FAILED)


def heal_stalled(now: datetime | None = None) -> list[Healed]:
    results = []
    for run in Run.objects.filter(status=Run.Status.STALLED).select_related("thread"):
        try:
            policy = stall_policy(run.thread.graph_name)
            if not policy.enabled:
                results.append(Healed(run.pk, run.thread.thread_id, "manual", 0,
                                      f"graph {run.thread.graph_name!r} opted out: ops decide"))
                continue
            results.append(_heal_one(run, policy, now or timezone.now()))
        except Exception as exc:  # noqa: BLE001 - one bad run must not stop the sweep
            logger.exception("run %s: automatic resume failed", run.pk)
            results.append(Healed(run.pk, run.thread.thread_id, "error", 0, str(exc)))
    return results


def _heal_one(run: Run, policy: StallPolicy, now: datetime) -> Healed:
    thread_id = run.thread.thread_id
    with transaction.atomic():
        # the row lock makes a second sweeper wait here, then see our attempt in the events
        locked = Run.objects.select_for_update().filter(pk=run.pk).first()
        if locked is None or locked.status != Run.Status.STALLED:
            return Healed(run.pk, thread_id, "gone", 0, "no longer stalled")
        history = Event.objects.filter(run=run.pk).aggregate(
            stalled=Max("created_at", filter=Q(kind="run_stalled")),
            resumed=Max("created_at", filter=Q(kind=AUTO_RESUMED)),
            # queued again by anyone since: this sweeper, ops (resume), a stopping worker
            # (hand-back). Only a stall after that is a new one (found in an ops trial: a
            # hand-back or an ops resume was resumed again 5 s later, a second task, and
            # an attempt of the policy spent).
            requeued=Max("created_at", filter=Q(kind__in=(AUTO_RESUMED, REQUEUED))),
        )
        done = Event.objects.filter(run=run.pk, kind=AUTO_RESUMED).count()
        if history["requeued"] and (not history["stalled"] or history["requeued"] > history[
                "stalled"]) and _task_waiting(run.pk):
            return Healed(run.pk, thread_id, "queued", done, "re-queued, waiting for a worker")
        if done >= policy.max_attempts:
            _give_up(locked, done, policy)
            return Healed(run.pk, thread_id, "needs_ops", done,
                          f"gave up after {done} automatic resumes")
        attempt = done + 1
        since = max(t for t in (history["stalled"], history["resumed"], locked.lease_expires_at,
                                locked.created_at) if t is not None)
        delay = policy.delay(attempt)
        due = since + timedelta(seconds=delay)
        if now < due:
            return Healed(run.pk, thread_id, "waiting", attempt,
                          f"attempt {attempt} due in {(due - now).total_seconds():.1f}s")
        reason = (f"automatic resume {attempt} of {policy.max_attempts} (graph "
                  f"{locked.thread.graph_name!r}, {delay:g}s after it stalled)")
        publish(AUTO_RESUMED, run=locked, reason=reason,
                data={"attempt": attempt, "max_attempts": policy.max_attempts,
                      "delay_seconds": delay})
        resume_stalled(locked, reason=reason)
        graph = locked.thread.graph_name
        transaction.on_commit(lambda: metrics.RUNS_AUTO_RESUMED.labels(graph).inc())
    return Healed(run.pk, thread_id, "resumed", attempt, reason)


def _give_up(run: Run, attempts: int, policy: StallPolicy) -> None:
    """Stalled -> failed, "needs ops". Inside the caller's transaction, on the locked row."""
    now = timezone.now()
    error = (f"needs ops: the run stalled again after {attempts} automatic resume"
             f"{'s' if attempts != 1 else ''} (policy max_attempts={policy.max_attempts}); "
             "its workers keep dying or hanging on it. Retry it once the cause is fixed, or "
             "cancel it.")
    Run.objects.filter(pk=run.pk, status=Run.Status.STALLED).update(
        status=Run.Status.FAILED, finished_at=now, lease_token="", lease_expires_at=None,
        error=error,
    )
    Thread.objects.filter(pk=run.thread_id).update(status=Thread.Status.FAILED, updated_at=now)
    run.refresh_from_db()
    # the task of the worker that died last is still RUNNING in the task table: finish it
    finish_lost_task(run.task_result_id, "run failed after its automatic resumes: needs ops")
    publish(NEEDS_OPS, run=run, reason=error,
            data={"attempts": attempts, "max_attempts": policy.max_attempts,
                  "worker": run.worker})
    run_stalled.send(sender=Run, run=run, needs_ops=True)
    graph = run.thread.graph_name
    transaction.on_commit(lambda: metrics.RUNS_NEEDS_OPS.labels(graph).inc())


def _task_waiting(run_id: int) -> bool:
    """Whether an `execute_run` task for this run waits in the database queue (READY)."""
    from django.tasks import TaskResultStatus, task_backends
    from django_tasks_db import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    if not isinstance(task_backends["default"], DatabaseBackend):
        return False
    for args_kwargs in DBTaskResult.objects.filter(
        task_path=EXECUTE_RUN_PATH, status=TaskResultStatus.READY
    ).values_list("args_kwargs", flat=True):
        args = args_kwargs.get("args") if isinstance(args_kwargs, dict) else None
        if args and args[0] == run_id:
            return True
    return False
