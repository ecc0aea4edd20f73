"""Reaching reviewers: an e-mail to the assignee of a new review (the user, or the members
of the group), sent from the task worker; and idle claims returned to the pool.

E-mails go through Django's e-mail framework (console backend in development, SMTP from
the environment in production); a person can opt out on their notifications page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.tasks import task
from django.urls import reverse
from django.utils import timezone

from approvals.models import ReviewRequest
from orchestration.runtime.events import publish


def recipients(review: ReviewRequest) -> list[Any]:
    """Active users with an e-mail address the review is assigned to, minus those who opted
    out. An unassigned review e-mails nobody: it waits in everyone's inbox."""
    if not review.assignee:
        return []
    users = get_user_model().objects.filter(
        Q(username=review.assignee) | Q(groups__name=review.assignee), is_active=True
    ).exclude(email="").exclude(email_preference__review_requests=False).distinct()
    return list(users.order_by("pk"))


def queue_review_email(review: ReviewRequest) -> None:
    """Queue the e-mail in the transaction that opens the review (a DB-backed task row
    commits with it; any other backend gets it after the commit)."""
    if not review.assignee:
        return
    from approvals.api.webhooks import tasks_share_our_database

    review_id = review.pk
    if tasks_share_our_database():
        email_review_requested.enqueue(review_id)
    else:
        transaction.on_commit(lambda: email_review_requested.enqueue(review_id))


@task()
def email_review_requested(review_id: int) -> dict[str, Any]:
    review = ReviewRequest.objects.select_related("thread").filter(pk=review_id).first()
    if review is None or not review.is_open:
        return {"review": review_id, "sent": 0}
    to = recipients(review)
    if not to:
        return {"review": review_id, "sent": 0}
    link = settings.STEPWISE_BASE_URL.rstrip("/") + reverse("review", args=[review.pk])
    title = review.title or f"review #{review.pk}"
    body = (
        f"A review is waiting for {review.assignee}: {title}\n"
        f"Thread: {review.thread.title or review.thread.thread_id}\n\n"
        f"Open it: {link}\n\n"
        "You get this because the review is assigned to you or your group. Turn these "
        f"e-mails off at {settings.STEPWISE_BASE_URL.rstrip('/')}{reverse('notifications')}\n"
    )
    # one message per person: nobody learns the other recipients' addresses
    sent = sum(send_mail(f"[Stepwise] Review waiting: {title}"[:200], body, None,
                         [user.email], fail_silently=False) for user in to)
    return {"review": review_id, "sent": sent}


def release_idle_claims(idle: dt.timedelta | None = None) -> list[int]:
    """Return claims idle longer than `idle` (STEPWISE_CLAIM_IDLE_SECONDS) to the pool, each
    recorded in its thread's history. A claim renewed or decided meanwhile is left alone."""
    idle = idle if idle is not None else dt.timedelta(seconds=settings.STEPWISE_CLAIM_IDLE_SECONDS)
    cutoff = timezone.now() - idle
    released = []
    stale = ReviewRequest.objects.filter(
        status=ReviewRequest.Status.CLAIMED, claimed_at__lt=cutoff
    ).select_related("thread", "claimed_by")
    for review in stale:
        with transaction.atomic():
            changed = ReviewRequest.objects.filter(
                pk=review.pk, status=ReviewRequest.Status.CLAIMED,
                claimed_by=review.claimed_by_id, claimed_at=review.claimed_at,
            ).update(status=ReviewRequest.Status.PENDING, claimed_by=None, claimed_at=None)
            if not changed:
                continue
            who = review.claimed_by.get_username() if review.claimed_by else "someone"
            publish(
                "review_claim_expired", thread=review.thread,
                reason=f"{who} held the claim for more than {idle}",
                data={"review": review.pk, "claimed_by": who,
                      "message": f"claim on review #{review.pk} by {who} expired"},
            )
            released.append(review.pk)
    return released
