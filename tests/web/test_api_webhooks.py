"""Webhooks: deliveries are recorded with the event, sent signed by a real worker to a real
receiver process, retried with backoff, and every attempt is logged."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from api_live import Receiver, start_worker
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from approvals.actions import DecisionInput, ReviewError, do_decide
from approvals.api.models import WebhookDelivery, WebhookEndpoint
from approvals.api.webhooks import EVENT_TYPES, backoff, subscribed
from approvals.models import ReviewRequest
from orchestration.runtime import runs

SECRET = "s3cret-for-tests"


def endpoint(url: str = "http://127.0.0.1:9/hook", events: tuple[str, ...] = EVENT_TYPES
             ) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(url=url, secret=SECRET, event_types=list(events))


def verify(secret: str, header: str, body: str) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.{body}".encode(), hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


def test_default_backoff_makes_at_least_six_attempts_over_at_least_an_hour(settings):
    attempts = settings.STEPWISE_WEBHOOK_MAX_ATTEMPTS
    assert attempts >= 6
    assert sum(backoff(n) for n in range(1, attempts)) >= 3600


def test_a_review_request_records_its_delivery_and_queues_it_in_the_same_transaction(
    start_paused
):
    hook = endpoint()
    review = start_paused()
    delivery = WebhookDelivery.objects.get(endpoint=hook, event_type="review.requested")
    body = json.loads(delivery.body)
    assert body["type"] == "review.requested"
    assert body["id"] == str(delivery.event_id)
    assert body["data"]["review"]["id"] == review.pk
    assert DBTaskResult.objects.filter(
        task_path="approvals.api.webhooks.deliver_webhook", args_kwargs__args=[delivery.pk]
    ).exists()


def test_an_endpoint_gets_only_the_event_types_it_subscribed_to(start_paused, make_user):
    only_decisions = endpoint(events=("review.decided",))
    review = start_paused()
    assert not WebhookDelivery.objects.filter(endpoint=only_decisions).exists()
    do_decide(make_user("admin"), review, DecisionInput(action="approve"))
    assert list(WebhookDelivery.objects.filter(endpoint=only_decisions)
                .values_list("event_type", flat=True)) == ["review.decided"]
    data = json.loads(WebhookDelivery.objects.get(endpoint=only_decisions).body)["data"]
    assert data["review"]["decision"]["action"] == "approve"


def test_a_refused_decision_sends_no_event(start_paused, make_user):
    hook = endpoint(events=("review.decided",))
    review = start_paused()
    do_decide(make_user("admin"), review, DecisionInput(action="approve"))
    with pytest.raises(ReviewError):
        do_decide(make_user("admin"), review, DecisionInput(action="reject", comment="no"))
    assert WebhookDelivery.objects.filter(endpoint=hook).count() == 1


def test_admin_send_test_event_queues_one_delivery(make_user):
    hook = endpoint(events=())
    admin_user: User = make_user(None, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:stepwise_api_webhookendpoint_changelist"),
        {"action": "send_test_event", "_selected_action": [hook.pk]},
    )
    assert response.status_code == 302
    delivery = WebhookDelivery.objects.get(endpoint=hook)
    assert delivery.event_type == "webhook.test"
    page = client.get(reverse("admin:stepwise_api_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_receiver_failing_twice_gets_the_same_signed_event_three_times(tmp_path, make_user):
    receiver = Receiver(tmp_path, statuses=[500, 500])
    hook = endpoint(receiver.url, events=("review.requested",))
    worker = start_worker(tmp_path, STEPWISE_WEBHOOK_BACKOFF_SECONDS="0.3")
    try:
        run = runs.start_thread("web_review", {"title": "Hooked", "amount": 5.0},
                                user=make_user("ops"))
        got = receiver.wait_for(3)
        review = ReviewRequest.objects.get(thread=run.thread)
        deadline = time.monotonic() + 10
        while WebhookDelivery.objects.get(endpoint=hook).status != "delivered":
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.1)
    finally:
        worker.stop()
        receiver.process.stop()
    assert [r["answered"] for r in got] == [500, 500, 200]
    ids = {r["headers"]["Stepwise-Event-Id"] for r in got}
    assert len(ids) == 1
    for r in got:
        assert verify(SECRET, r["headers"]["Stepwise-Signature"], r["body"])
        body: dict[str, Any] = json.loads(r["body"])
        assert body["id"] in ids and body["type"] == "review.requested"
        assert body["data"]["review"]["id"] == review.pk
    delivery = WebhookDelivery.objects.get(endpoint=hook)
    assert delivery.attempts == 3
    log = list(delivery.attempt_log.order_by("number"))
    assert [a.status_code for a in log] == [500, 500, 200]
    assert log[0].response_excerpt == "answered 500"


def test_a_forged_signature_does_not_verify():
    assert not verify(SECRET, "t=1,v1=" + "0" * 64, '{"id": "x"}')


@pytest.mark.django_db
def test_subscribed_reads_what_the_orm_reads():
    """`subscribed`'s fixed statement against the ORM's filter it replaced: the same active
    endpoints for each event type, every field the same (event types decoded from JSON)."""
    from approvals.api.webhooks import subscribed

    endpoint(events=("review.decided", "run.failed"))
    endpoint(events=("run.failed",))
    WebhookEndpoint.objects.create(url="https://hooks.example.com/off", secret="s" * 32,
                                   event_types=["run.failed"], is_active=False)
    WebhookEndpoint.objects.create(url="https://hooks.example.com/none", secret="s" * 32,
                                   event_types=[], description="nothing yet")
    fields = [f.attname for f in WebhookEndpoint._meta.concrete_fields]
    for event_type in (*EVENT_TYPES, "no.such.event"):
        ours = sorted(tuple(getattr(e, f) for f in fields) for e in subscribed(event_type))
        orm = sorted(tuple(getattr(e, f) for f in fields)
                     for e in WebhookEndpoint.objects.filter(is_active=True)
                     if event_type in (e.event_types or []))
        assert ours == orm, event_type
    assert len(subscribed("run.failed")) == 2
    assert all(not e._state.adding for e in subscribed("run.failed"))


def _decide_inline(review: ReviewRequest, user: User, capture: Any) -> None:
    with runs.run_inline(), capture(execute=True):
        do_decide(user, review, DecisionInput(action="approve"))


def _endpoint_reads(queries: list[dict[str, Any]]) -> list[str]:
    """Statements that read the endpoints by themselves (not a run end's or a decision's
    statement that answers whether any is active along with its writes)."""
    return [q["sql"] for q in queries
            if "stepwise_api_webhookendpoint" in q["sql"] and q["sql"].startswith("SELECT")]


def test_a_run_end_sends_run_succeeded_to_an_endpoint_created_after_the_previous_end(
    start_paused, make_user, django_capture_on_commit_callbacks
):
    """The run end's statement says whether any endpoint is active (PostgreSQL): what it read
    serves its own transaction only, never a later one in the same worker thread."""
    review = start_paused()  # its run paused with no endpoint at all
    assert not WebhookDelivery.objects.exists()
    hook = endpoint(events=("run.succeeded",))
    assert [e.pk for e in subscribed("run.succeeded")] == [hook.pk]
    _decide_inline(review, make_user("admin"), django_capture_on_commit_callbacks)
    (delivery,) = WebhookDelivery.objects.filter(endpoint=hook)
    assert delivery.event_type == "run.succeeded"
    assert json.loads(delivery.body)["data"]["run"]["status"] == "succeeded"


def test_a_run_ending_with_no_endpoint_reads_none_on_postgresql(
    start_paused, make_user, django_capture_on_commit_callbacks
):
    """No endpoint active: neither the pause (its review.requested) nor the end (run.succeeded)
    reads the endpoints by a statement of its own on PostgreSQL; elsewhere each reads them.
    The decision's insert answers for its review.decided on both."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as paused:
        review = start_paused()
    with CaptureQueriesContext(connection) as ended:
        _decide_inline(review, make_user("admin"), django_capture_on_commit_callbacks)
    reads = _endpoint_reads(paused.captured_queries) + _endpoint_reads(ended.captured_queries)
    assert len(reads) == (0 if connection.vendor == "postgresql" else 2), reads
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("active", [False, True])
def test_a_decision_reads_the_endpoints_only_when_one_is_active(start_paused, make_user,
                                                                 active):
    """The decision's insert says whether any endpoint is active: none, no query for them
    and no delivery; one (created a moment before the decision), its review.decided."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    review = start_paused()
    hook = endpoint(events=("review.decided",))
    if not active:
        WebhookEndpoint.objects.filter(pk=hook.pk).update(is_active=False)
    with CaptureQueriesContext(connection) as ctx:
        do_decide(make_user("admin"), review, DecisionInput(action="approve"))
    assert len(_endpoint_reads(ctx.captured_queries)) == int(active)
    assert list(WebhookDelivery.objects.filter(endpoint=hook).values_list(
        "event_type", flat=True)) == (["review.decided"] if active else [])


def test_what_a_decision_read_of_the_endpoints_is_not_kept_for_later_events(
    start_paused, make_user
):
    """Inside one transaction (the test's), an endpoint created after a decision that saw
    none still gets the next event: the decision's answer served its own receivers only."""
    first, second = start_paused(), start_paused()
    do_decide(make_user("admin"), first, DecisionInput(action="approve"))  # no endpoint
    hook = endpoint(events=("review.decided",))
    do_decide(make_user("admin"), second, DecisionInput(action="approve"))
    assert WebhookDelivery.objects.filter(endpoint=hook).count() == 1
    assert subscribed("review.decided") == [hook]
