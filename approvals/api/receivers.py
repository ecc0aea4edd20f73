"""Events that become webhooks: additive receivers on the runtime's run signals and on the
review rows, each running inside the transaction that records what happened."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

from approvals.api import shapes
from approvals.api.webhooks import ANY_ACTIVE, any_active_sql, emit, subscribed
from approvals.models import Decision, ReviewRequest
from approvals.notify import queue_review_email
from orchestration.runtime.models import Run
from orchestration.runtime.runend import read_along
from orchestration.runtime.signals import run_failed, run_finished, run_stalled


def on_review_saved(sender: Any, instance: ReviewRequest, created: bool, **kwargs: Any) -> None:
    # a "decide differently" copy is created already decided: not a request for anyone
    if created and instance.status == ReviewRequest.Status.PENDING:
        emit("review.requested", {"review": shapes.review_dict(instance)})
        queue_review_email(instance)


def on_decision_saved(sender: Any, instance: Decision, created: bool, **kwargs: Any) -> None:
    if not created:
        return
    endpoints = subscribed("review.decided")
    if not endpoints:  # most installations: no row to read for a payload nobody receives
        return
    review = ReviewRequest.objects.select_related("thread").get(pk=instance.review_id)
    review.decision = instance
    data = shapes.review_dict(review)
    data["decision"] = shapes.decision_dict(instance)
    emit("review.decided", {"review": data}, endpoints)


def _run_event(event_type: str) -> Any:
    def receiver(sender: Any, run: Run, **kwargs: Any) -> None:
        endpoints = subscribed(event_type)
        if not endpoints:
            return
        run = Run.objects.select_related("thread").get(pk=run.pk)
        data = {"run": shapes.run_dict(run), "thread": shapes.thread_dict(run.thread)}
        if "needs_ops" in kwargs:  # run.stalled: true once the automatic resumes gave up
            data["needs_ops"] = bool(kwargs["needs_ops"])
        emit(event_type, data, endpoints)

    return receiver


on_run_succeeded = _run_event("run.succeeded")
on_run_failed = _run_event("run.failed")
on_run_stalled = _run_event("run.stalled")


def connect() -> None:
    post_save.connect(on_review_saved, sender=ReviewRequest, dispatch_uid="webhook-review")
    post_save.connect(on_decision_saved, sender=Decision, dispatch_uid="webhook-decision")
    run_finished.connect(on_run_succeeded, dispatch_uid="webhook-run-succeeded")
    run_failed.connect(on_run_failed, dispatch_uid="webhook-run-failed")
    run_stalled.connect(on_run_stalled, dispatch_uid="webhook-run-stalled")
    # the run's end (and the review a pause opens with it) asks `subscribed` in the same
    # transaction: its statement answers "any endpoint active?" (PostgreSQL)
    read_along(ANY_ACTIVE, any_active_sql())
