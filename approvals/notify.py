"""Reaching reviewers: an e-mail to the assignee of a new review (the user, or the members
of the group), sent from the task worker; overdue reviews escalated once (e-mail to the ops
group, `review.overdue` webhook); idle claims returned to the pool.

E-mails go through Django's e-mail framework (console backend in development, SMTP from
the environment in production); a person can opt out on their notifications page.

Every e-mail task is `retry_when_worker_lost`: a worker killed while sending is replaced by a
new task that sends again (`orchestration.runtime.lost_tasks`). Each message carries a
Message-ID made of what it is about and who it is for (`message_id`), the same on every
attempt, so a mailbox that got it before the worker died files the second copy as the same
message (SMTP has no stronger idempotency than this). A mail server that cannot take a message
now gets it again later (`approvals.mailretry`).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import Q
from django.tasks import task
from django.urls import reverse
from django.utils import timezone

from approvals.api.webhooks import tasks_share_our_database
from approvals.mailretry import deliver_each
from approvals.models import ReviewRequest
from orchestration.runtime import queues
from orchestration.runtime.events import publish
from orchestration.runtime.lost_tasks import retry_when_worker_lost


def message_id(*about: object) -> str:
    """`<stepwise.review-requested.12.7@host>`: the same for every attempt at one message
    (what it is about, its recipient), unlike the random one Django would add."""
    from urllib.parse import urlsplit

    host = urlsplit(settings.STEPWISE_BASE_URL).hostname or "stepwise.invalid"
    return f"<stepwise.{'.'.join(str(part) for part in about)}@{host}>"


def send_to(user: Any, subject: str, body: str, *about: object) -> int:
    """One message to one person (nobody learns the other recipients' addresses), with the
    Message-ID `message_id(*about, user.pk)`."""
    message = EmailMessage(subject[:200], body, None, [user.email],
                           headers={"Message-ID": message_id(*about, user.pk)})
    return message.send(fail_silently=False)


def _addressees(assignee: str) -> Any:
    return get_user_model().objects.filter(
        Q(username=assignee) | Q(groups__name=assignee), is_active=True
    ).exclude(email="").exclude(email_preference__review_requests=False)


@functools.cache
def _anyone_sql() -> str:
    """`_addressees(assignee).exists()` as the ORM writes it, the tables named from the
    models: fixed once, as a worker asks for every review it opens and compiling the
    queryset's joins cost several times running it."""
    q = connection.ops.quote_name
    user = get_user_model()
    groups = user._meta.get_field("groups")
    through = groups.remote_field.through._meta  # type: ignore[union-attr]
    preference = user._meta.get_field("email_preference").related_model._meta  # type: ignore[union-attr]
    return (
        f"SELECT 1 FROM {q(user._meta.db_table)} u "  # noqa: S608 - names from the models
        f"LEFT OUTER JOIN {q(through.db_table)} ug ON u.id = ug.{q(groups.m2m_column_name())} "
        f"LEFT OUTER JOIN {q(groups.related_model._meta.db_table)} g "
        f"ON ug.{q(groups.m2m_reverse_name())} = g.id "
        f"LEFT OUTER JOIN {q(preference.db_table)} p ON u.id = p.user_id "
        "WHERE (u.username = %s OR g.name = %s) AND u.is_active = %s AND NOT (u.email = %s) "
        "AND NOT (p.review_requests = %s AND p.review_requests IS NOT NULL) LIMIT 1"
    )


def anyone_to_email(assignee: str) -> bool:
    """Whether `_addressees(assignee)` has anyone (its `.exists()`), from a fixed statement."""
    with connection.cursor() as cursor:
        cursor.execute(_anyone_sql(), [assignee, assignee, True, "", False])
        return cursor.fetchone() is not None


def recipients(review: ReviewRequest) -> list[Any]:
    """Active users with an e-mail address the review is assigned to, minus those who opted
    out. An unassigned review e-mails nobody: it waits in everyone's inbox."""
    if not review.assignee:
        return []
    return list(_addressees(review.assignee).distinct().order_by("pk"))


def queue_review_email(review: ReviewRequest) -> None:
    """Queue the e-mail in the transaction that opens the review (a DB-backed task row
    commits with it; any other backend gets it after the commit), if anyone it is assigned
    to can be e-mailed at all: one read here instead of a task row, its wake-up, a worker's
    claim, two reads and its result for every review of a team without addresses (the task
    still picks its recipients when it sends)."""
    if not review.assignee or not anyone_to_email(review.assignee):
        return
    _queue(email_review_requested, review.pk)


def _queue(job: Any, review_id: int) -> None:
    if tasks_share_our_database():
        job.enqueue(review_id)
    else:
        transaction.on_commit(lambda: job.enqueue(review_id))


@retry_when_worker_lost
@task(queue_name=queues.NOTIFY)
def email_review_requested(review_id: int, only: list[int] | None = None,
                           attempt: int = 1) -> dict[str, Any]:
    """The new review's e-mail to each recipient (`only` these user ids: a retry,
    approvals.mailretry)."""
    review = ReviewRequest.objects.select_related("thread").filter(pk=review_id).first()
    if review is None or not review.is_open:
        return {"review": review_id, "sent": 0}
    to = [user for user in recipients(review) if only is None or user.pk in only]
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
    return {"review": review_id, **deliver_each(
        email_review_requested, review_id, attempt, to,
        lambda user: send_to(user, f"[Stepwise] Review waiting: {title}", body,
                             "review-requested", review.pk))}


def escalate_overdue() -> list[int]:
    """Escalate each open review past its due time, once: a history entry, the
    `review.overdue` webhook and an e-mail to the members of STEPWISE_ESCALATE_TO_GROUP."""
    from approvals.api.shapes import review_dict
    from approvals.api.webhooks import emit

    now = timezone.now()
    escalated = []
    overdue = ReviewRequest.objects.filter(
        status__in=ReviewRequest.OPEN, due_at__lt=now, escalated_at__isnull=True
    ).select_related("thread")
    for review in overdue:
        with transaction.atomic():
            if not ReviewRequest.objects.filter(
                pk=review.pk, status__in=ReviewRequest.OPEN, escalated_at__isnull=True
            ).update(escalated_at=now):
                continue  # decided, or escalated by another sweeper, meanwhile
            review.escalated_at = now
            late = timezone.localtime(review.due_at).strftime("%Y-%m-%d %H:%M")
            publish("review_overdue", thread=review.thread,
                    data={"review": review.pk, "message": f"review #{review.pk} was due {late}"})
            emit("review.overdue", {"review": review_dict(review)})
            _queue(email_review_overdue, review.pk)
            escalated.append(review.pk)
    return escalated


@retry_when_worker_lost
@task(queue_name=queues.NOTIFY)
def email_review_overdue(review_id: int, only: list[int] | None = None,
                         attempt: int = 1) -> dict[str, Any]:
    review = ReviewRequest.objects.select_related("thread").filter(pk=review_id).first()
    if review is None or not review.is_open:
        return {"review": review_id, "sent": 0}
    ops = get_user_model().objects.filter(
        groups__name=settings.STEPWISE_ESCALATE_TO_GROUP, is_active=True
    ).exclude(email="").distinct().order_by("pk")
    if only is not None:
        ops = ops.filter(pk__in=only)
    link = settings.STEPWISE_BASE_URL.rstrip("/") + reverse("review", args=[review.pk])
    title = review.title or f"review #{review.pk}"
    body = (
        f"Review #{review.pk} is overdue: {title}\n"
        f"Assigned to: {review.assignee or 'anyone with the reviewer role'}; status "
        f"{review.status}; due {review.due_at:%Y-%m-%d %H:%M %Z}.\n\nOpen it: {link}\n"
    )
    return {"review": review_id, **deliver_each(
        email_review_overdue, review_id, attempt, ops,
        lambda user: send_to(user, f"[Stepwise] Overdue review: {title}", body,
                             "review-overdue", review.pk))}


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
