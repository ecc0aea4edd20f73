"""Webhooks: an event becomes one delivery row per subscribed endpoint, written and queued in
the transaction that records the event; the task worker POSTs it, signed, and retries with
exponential backoff until a 2xx answer or the attempts run out. Each attempt is logged.
A delivery whose endpoint was deactivated before it got through is not sent any more: it
ends `abandoned` ("Not sent: endpoint deactivated" in the admin); only the admin's test
event still goes to an inactive endpoint.

Signature: `Stepwise-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`
with the endpoint's secret. At least once: a receiver dedupes by `Stepwise-Event-Id`.

A delivery is never left pending with nothing queued to send it: a worker killed mid-delivery
is replaced by the sweeper (`retry_when_worker_lost`), and a delivery task that raised (the
database failing between the POST and its record) is queued again by `sweep_reviews`
(`requeue_stuck_deliveries`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.tasks import task
from django.utils import timezone

from approvals import rowread
from approvals.api import webhook_post
from approvals.api.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from orchestration.runtime import queues
from orchestration.runtime.lost_tasks import retry_when_worker_lost
from orchestration.runtime.runend import read_with_run_end

EVENT_TYPES = ("review.requested", "review.decided", "run.succeeded", "run.failed",
               "run.stalled", "review.overdue")
TEST_EVENT = "webhook.test"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


_ENDPOINT = (rowread.Join(WebhookEndpoint, "e"),)


@functools.cache
def _active_sql() -> str:
    table = connection.ops.quote_name(WebhookEndpoint._meta.db_table)
    return f"SELECT {rowread.select(_ENDPOINT)} FROM {table} e WHERE e.is_active = %s"  # noqa: S608


# Whether any endpoint is active, read by the statement that ends a run (PostgreSQL) for
# the receivers that run in its transaction (`runend.read_along`, registered in `receivers`)
ANY_ACTIVE = "webhooks.any_active"


@functools.cache
def any_active_sql() -> str:
    table = connection.ops.quote_name(WebhookEndpoint._meta.db_table)
    return f"EXISTS (SELECT 1 FROM {table} WHERE is_active)"  # noqa: S608 - the model's table


def subscribed(event_type: str) -> list[WebhookEndpoint]:
    """The active endpoints subscribed to `event_type` (one query). A worker asks on every
    review it opens and every run that ends, mostly to learn there are none: the statement
    is fixed (approvals.rowread builds the ORM's instances), as compiling
    `WebhookEndpoint.objects.filter(is_active=True)` each time cost more than running it.
    Inside the transaction of a run's end on PostgreSQL (or of a decision's insert), its
    statement said whether any endpoint is active (in its snapshot, a moment before this one
    would): none, no query. Never kept beyond that statement's transaction."""
    active = read_with_run_end(ANY_ACTIVE)
    if active is not None and not active:  # False, or SQLite's 0
        return []
    with connection.cursor() as cursor:
        cursor.execute(_active_sql(), [True])
        rows = cursor.fetchall()
    endpoints: list[WebhookEndpoint] = [rowread.build(_ENDPOINT, row)  # type: ignore[misc]
                                        for row in rows]
    # event_types is a small JSON list; filtering here works on SQLite and PostgreSQL alike
    return [e for e in endpoints if event_type in (e.event_types or [])]


def emit(event_type: str, data: dict[str, Any],
         endpoints: list[WebhookEndpoint] | None = None) -> list[WebhookDelivery]:
    """Record `event_type` for every active endpoint subscribed to it and queue its delivery.
    Call inside the transaction that makes the event true: both commit or neither does."""
    if endpoints is None:
        endpoints = subscribed(event_type)
    if not endpoints:
        return []
    event_id = uuid.uuid4()
    body = json.dumps(
        {"id": str(event_id), "type": event_type, "created_at": timezone.now(), "data": data},
        cls=DjangoJSONEncoder,
    )
    deliveries = []
    with transaction.atomic():
        for endpoint in endpoints:
            delivery = WebhookDelivery.objects.create(
                endpoint=endpoint, event_id=event_id, event_type=event_type, body=body,
                next_attempt_at=timezone.now(),
            )
            _queue(delivery.pk, None)
            deliveries.append(delivery)
    return deliveries


def _queue(delivery_id: int, run_after: dt.datetime | None) -> None:
    job = deliver_webhook.using(run_after=run_after) if run_after else deliver_webhook
    if tasks_share_our_database():
        job.enqueue(delivery_id)  # the task row commits with the event
    else:
        transaction.on_commit(lambda: job.enqueue(delivery_id))


def tasks_share_our_database() -> bool:
    try:
        from django_tasks_db import DatabaseBackend
    except ImportError:  # pragma: no cover - the database backend is a dependency
        return False
    return isinstance(deliver_webhook.get_backend(), DatabaseBackend)


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    return float(settings.STEPWISE_WEBHOOK_BACKOFF_SECONDS
                 * settings.STEPWISE_WEBHOOK_BACKOFF_FACTOR ** (attempt - 1))


# A worker killed mid-delivery: the sweeper queues the delivery again. The receiver gets the
# same stored body and `Stepwise-Event-Id` (it may have got the first POST): once, after dedup.
@retry_when_worker_lost
@task(queue_name=queues.NOTIFY)
def deliver_webhook(delivery_id: int) -> dict[str, Any]:
    """One attempt at one delivery; queues the next attempt itself when this one fails."""
    delivery = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).first()
    )
    if delivery is None:
        return {"delivery": delivery_id, "outcome": "skipped"}
    if not delivery.endpoint.is_active and delivery.event_type != TEST_EVENT:
        # deactivated after the event was queued (a retry, or a backlog): an admin turned the
        # receiver off, so nothing more goes to it; the delivery says why in the admin. (The
        # admin's own test event still goes: it tries an endpoint before turning it on.)
        WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookDelivery.Status.PENDING
        ).update(status=WebhookDelivery.Status.ABANDONED, next_attempt_at=None)
        return {"delivery": delivery_id, "outcome": "abandoned"}
    number = delivery.attempts + 1
    # two workers holding the same job: the conditional update lets one of them send
    if not WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDelivery.Status.PENDING, attempts=delivery.attempts
    ).update(attempts=number):
        return {"delivery": delivery_id, "outcome": "skipped"}
    answer = _post(delivery)
    ok = answer.status_code is not None and 200 <= answer.status_code < 300
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery, number=number, status_code=answer.status_code,
            error=answer.error, response_excerpt=answer.excerpt, duration_ms=answer.duration_ms,
        )
        if ok:
            fields = {"status": WebhookDelivery.Status.DELIVERED, "next_attempt_at": None}
        elif number >= settings.STEPWISE_WEBHOOK_MAX_ATTEMPTS:
            fields = {"status": WebhookDelivery.Status.FAILED, "next_attempt_at": None}
        else:
            at = timezone.now() + dt.timedelta(seconds=backoff(number))
            fields = {"next_attempt_at": at}
            _queue(delivery.pk, at)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    outcome = "delivered" if ok else str(fields.get("status", "retrying"))
    return {"delivery": delivery_id, "attempt": number, "outcome": outcome}


def requeue_stuck_deliveries(grace: float | None = None) -> list[int]:
    """Queue again the pending deliveries due more than `grace` seconds ago (two POST timeouts
    by default) that no task will send: none waits in the queue or is being run. That is
    what a delivery task that raised leaves (its row FAILED, the delivery pending). Each is
    taken by a conditional update of its due time, so two sweepers queue it once."""
    if not tasks_share_our_database():  # another backend's queue cannot be read from here
        return []
    from django.tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    if grace is None:
        grace = 2 * settings.STEPWISE_WEBHOOK_TIMEOUT_SECONDS
    now = timezone.now()
    stuck = list(WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__lt=now - dt.timedelta(seconds=grace),
    ).values_list("pk", "next_attempt_at"))
    if not stuck:
        return []
    queued = {
        (args_kwargs.get("args") or [None])[0]
        for args_kwargs in DBTaskResult.objects.filter(
            task_path=deliver_webhook.module_path,
            status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING],
        ).values_list("args_kwargs", flat=True)
        if isinstance(args_kwargs, dict)
    }
    requeued = []
    for pk, due in stuck:
        if pk in queued:
            continue
        with transaction.atomic():
            if WebhookDelivery.objects.filter(
                pk=pk, status=WebhookDelivery.Status.PENDING, next_attempt_at=due
            ).update(next_attempt_at=now):
                _queue(pk, None)
                requeued.append(pk)
    return requeued


def _post(delivery: WebhookDelivery) -> webhook_post.Answer:
    """(status code, response excerpt, error, milliseconds) of one POST."""
    body = delivery.body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Stepwise-Webhooks/1",
        "Stepwise-Event-Id": str(delivery.event_id),
        "Stepwise-Event-Type": delivery.event_type,
        "Stepwise-Signature": sign(delivery.endpoint.secret, timestamp, body),
    }
    return webhook_post.post(delivery.endpoint.url, body, headers,
                             settings.STEPWISE_WEBHOOK_TIMEOUT_SECONDS)


def send_test_event(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """The admin's "send test event": one delivery to this endpoint, subscribed or not."""
    return emit(TEST_EVENT, {"endpoint": endpoint.pk, "message": "Stepwise test event"},
                endpoints=[endpoint])[0]
