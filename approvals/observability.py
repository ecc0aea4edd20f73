"""What ops hear and see: decisions counted for `/metrics`, and an e-mail to the ops group
when the sweeper gives up on a stalled run (`orchestration.runtime.healing`; the
`run.stalled` webhook is sent by `approvals.api.receivers` on the same signal)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_save
from django.tasks import task
from django.urls import reverse

from approvals.api.webhooks import tasks_share_our_database
from approvals.mailretry import deliver_each
from approvals.models import Decision
from approvals.notify import send_to
from orchestration.runtime import metrics, queues
from orchestration.runtime.lost_tasks import retry_when_worker_lost
from orchestration.runtime.models import Run
from orchestration.runtime.signals import run_stalled


def on_decision_saved(sender: Any, instance: Decision, created: bool, **kwargs: Any) -> None:
    if created:
        action = instance.action
        # counted once the decision is committed: a rolled-back one never happened
        transaction.on_commit(lambda: metrics.DECISIONS.labels(action).inc())


def on_run_stalled(sender: Any, run: Run, needs_ops: bool = False, **kwargs: Any) -> None:
    if not needs_ops:
        return
    if tasks_share_our_database():
        email_run_needs_ops.enqueue(run.pk)  # the task row commits with the failure
    else:
        run_id = run.pk
        transaction.on_commit(lambda: email_run_needs_ops.enqueue(run_id))


@retry_when_worker_lost  # sent again if its worker dies; same Message-ID (approvals.notify)
@task(queue_name=queues.NOTIFY)
def email_run_needs_ops(run_id: int, only: list[int] | None = None,
                        attempt: int = 1) -> dict[str, Any]:
    run = Run.objects.select_related("thread").filter(pk=run_id).first()
    if run is None:
        return {"run": run_id, "sent": 0}
    ops = get_user_model().objects.filter(
        groups__name=settings.STEPWISE_ESCALATE_TO_GROUP, is_active=True
    ).exclude(email="").distinct().order_by("pk")
    if only is not None:
        ops = ops.filter(pk__in=only)
    link = settings.STEPWISE_BASE_URL.rstrip("/") + reverse("run", args=[run.pk])
    title = run.thread.title or run.thread.thread_id
    body = (
        f"Run {run.pk} of thread {title} ({run.thread.graph_name}) stalled again after its "
        f"automatic resumes and now needs a person.\n\n{run.error}\n\n"
        f"Last worker: {run.worker or 'unknown'}.\nOpen it: {link}\n"
    )
    return {"run": run_id, **deliver_each(
        email_run_needs_ops, run_id, attempt, ops,
        lambda user: send_to(user, f"[Stepwise] Run {run.pk} needs ops: {title}", body,
                             "run-needs-ops", run.pk))}


def connect() -> None:
    post_save.connect(on_decision_saved, sender=Decision, dispatch_uid="metrics-decision")
    run_stalled.connect(on_run_stalled, dispatch_uid="email-run-needs-ops")
