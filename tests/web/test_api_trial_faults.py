"""Faults an integrator's trial of the HTTP API found, each pinned by a test: concurrent
requests with one Idempotency-Key, deliveries to a deactivated webhook endpoint, Agent Inbox
edits of the wrong type, edits that change nothing, inputs that fail the run later (64-bit
overflow, Python-only number syntax, NaN), errors that were not problem+json, the OpenAPI
document's error media type and Idempotency-Key, and the smaller ones (empty `status=`, an
empty body, the fingerprint of re-serialized JSON)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from api_helpers import ApiClient
from django.db import connections
from django.test import Client

from approvals.api.models import IdempotencyRecord, WebhookDelivery, WebhookEndpoint
from approvals.api.webhook_post import Answer
from approvals.models import Decision, ReviewRequest
from demo.workflows.email_agent import EmailTask
from orchestration.runtime import runs
from orchestration.runtime.models import Run, Thread

PROBLEM = "application/problem+json"


def _is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM), response["Content-Type"]
    body = json.loads(response.content)
    assert body["status"] == status and body["detail"] and body["title"]
    assert body["type"] == "about:blank"
    return body


# ---------------------------------------------------------------- 1. concurrent Idempotency-Key


def _at_once(n: int, call: Any) -> list[Any]:
    """`call()` from `n` threads released together, each on its own database connection."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            barrier.wait()
            response = call()
            with lock:
                results.append(response)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert len(results) == n
    return results


def _one_answer_replayed(results: list[Any], status: int) -> None:
    assert sorted(r.status_code for r in results) == [status] * len(results), [
        (r.status_code, r.content[:200]) for r in results]
    first = json.loads(results[0].content)
    # every one the first response (PostgreSQL's jsonb keeps the keys in an order of its own)
    assert all(json.loads(r.content) == first for r in results)
    assert sum(r.get("Idempotent-Replayed") == "true" for r in results) == len(results) - 1


@pytest.mark.django_db(transaction=True)
def test_one_key_sent_six_times_at_once_decides_once_and_replays_five(make_user, make_review):
    review = make_review(payload={"kind": "review", "title": "r", "data": {},
                                  "actions": ["approve", "reject"]})
    token = ApiClient(make_user("reviewer")).token
    results = _at_once(6, lambda: ApiClient(raw_token=token).post(
        f"/reviews/{review.pk}/decision", {"action": "approve"},
        **{"Idempotency-Key": "decide-once"}))
    _one_answer_replayed(results, 200)
    assert Decision.objects.filter(review=review).count() == 1
    assert IdempotencyRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_key_starting_a_named_thread_at_once_creates_it_once(make_user):
    token = ApiClient(make_user("ops")).token
    body = {"graph": "web_note", "input": {"text": "t"}, "thread_id": "order-4711"}
    results = _at_once(6, lambda: ApiClient(raw_token=token).post(
        "/threads", body, **{"Idempotency-Key": "start-once"}))
    _one_answer_replayed(results, 201)
    assert Thread.objects.filter(thread_id="order-4711").count() == 1
    assert Run.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_key_cancelling_a_run_at_once_replays_the_cancel(make_user, make_run):
    run = make_run()
    token = ApiClient(make_user("ops")).token
    results = _at_once(6, lambda: ApiClient(raw_token=token).post(
        f"/runs/{run.pk}/cancel", {"reason": "stop it"}, **{"Idempotency-Key": "cancel-once"}))
    _one_answer_replayed(results, 200)
    assert json.loads(results[0].content)["run"]["status"] == "cancelled"


def test_a_failed_first_request_leaves_the_key_free_for_the_retry(make_user, make_review):
    """The key is reserved in the work's own transaction: a refusal keeps nothing."""
    review = make_review()
    api = ApiClient(make_user("reviewer"))
    refused = api.post(f"/reviews/{review.pk}/decision", {"action": "reject"},
                       **{"Idempotency-Key": "k1"})
    assert refused.status_code == 422
    assert not IdempotencyRecord.objects.exists()
    ok = api.post(f"/reviews/{review.pk}/decision", {"action": "reject", "comment": "no"},
                  **{"Idempotency-Key": "k1"})
    assert ok.status_code == 200 and not ok.has_header("Idempotent-Replayed")
    assert IdempotencyRecord.objects.get().status == 200


def test_the_same_json_written_another_way_is_the_same_request(make_user, make_review):
    review = make_review()
    api = ApiClient(make_user("reviewer"))
    first = api.post(f"/reviews/{review.pk}/decision",
                     raw='{"action": "reject", "comment": "no"}', **{"Idempotency-Key": "k"})
    again = api.post(f"/reviews/{review.pk}/decision",
                     raw='{\n  "comment":"no",\n  "action":"reject"\n}', **{"Idempotency-Key": "k"})
    assert first.status_code == again.status_code == 200, again.content
    assert again["Idempotent-Replayed"] == "true"
    other = api.post(f"/reviews/{review.pk}/decision",
                     raw='{"action": "reject", "comment": "No"}', **{"Idempotency-Key": "k"})
    assert _is_problem(other, 409)["detail"].startswith("Idempotency-Key 'k' was already used")


# ---------------------------------------------------------------- 2. deactivated webhook endpoint


def test_a_deactivated_endpoint_gets_no_more_attempts(start_paused, monkeypatch):
    from approvals.api import webhooks

    hook = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s",
                                          event_types=["review.requested"])
    start_paused()
    delivery = WebhookDelivery.objects.get(endpoint=hook)
    posted: list[int] = []
    monkeypatch.setattr(webhooks, "_post", lambda d: posted.append(d.pk) or Answer(500, "", "", 1))
    webhooks.deliver_webhook.call(delivery.pk)  # the first attempt fails; a retry is queued
    assert posted == [delivery.pk]
    WebhookEndpoint.objects.filter(pk=hook.pk).update(is_active=False)
    outcome = webhooks.deliver_webhook.call(delivery.pk)  # the retry
    assert posted == [delivery.pk]  # not sent again
    assert outcome["outcome"] == "abandoned"
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.ABANDONED
    assert delivery.next_attempt_at is None and delivery.attempts == 1
    assert "deactivated" in delivery.get_status_display()
    # and it stays so: another copy of the job (a sweeper's requeue) does nothing
    assert webhooks.deliver_webhook.call(delivery.pk)["outcome"] == "skipped"


def test_the_admin_s_test_event_still_goes_to_an_inactive_endpoint(db, monkeypatch):
    from approvals.api import webhooks

    hook = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s",
                                          event_types=[], is_active=False)
    delivery = webhooks.send_test_event(hook)
    monkeypatch.setattr(webhooks, "_post", lambda d: Answer(204, "", "", 1))
    assert webhooks.deliver_webhook.call(delivery.pk)["outcome"] == "delivered"


def test_the_admin_lists_abandoned_deliveries(make_user, start_paused):
    from django.urls import reverse

    hook = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s",
                                          event_types=["review.requested"], is_active=True)
    start_paused()
    WebhookEndpoint.objects.filter(pk=hook.pk).update(is_active=False)
    from approvals.api.webhooks import deliver_webhook

    deliver_webhook.call(WebhookDelivery.objects.get().pk)
    client = Client()
    client.force_login(make_user(None, is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:stepwise_api_webhookdelivery_changelist"),
                      {"status__exact": "abandoned"}).content.decode()
    assert "review.requested" in page and "endpoint deactivated" in page


# ---------------------------------------------------------------- 3 and 4. edits


def _email_review(start_paused: Any) -> ReviewRequest:
    return start_paused("email_agent", EmailTask(sender="Mia Wong", sender_email="mia@ex.com",
                                                 subject="Kickoff", message="Meet?"))


@pytest.mark.parametrize("value, expected", [
    (123, "a string"), (None, "a string"), (["x"], "a string"), ({"a": 1}, "a string"),
    (True, "a string"),
])
def test_an_agent_inbox_edit_keeps_each_argument_s_type(start_paused, make_user, value, expected):
    review = _email_review(start_paused)
    response = ApiClient(make_user("reviewer")).post(
        f"/reviews/{review.pk}/decision", {"action": "edit", "values": {"body": value}})
    body = _is_problem(response, 422)
    assert "values.body" in body["errors"]
    assert expected in body["errors"]["values.body"][0]
    assert not Decision.objects.exists()


def test_agent_inbox_argument_types_follow_the_asked_values():
    from approvals import agent_inbox

    payload = agent_inbox.review_payload({
        "action_request": {"action": "refund", "args": {
            "order": "A1", "amount": 5, "rate": 0.5, "urgent": False, "lines": [1],
            "meta": {}, "note": None}},
        "config": {"allow_accept": True, "allow_edit": True, "allow_respond": False,
                   "allow_ignore": False},
    }, "agent")

    def edit(**values: Any) -> Any:
        return agent_inbox.answer_for_action(payload, "edit", values)

    assert edit(amount=7)[0]["args"]["args"]["amount"] == 7
    assert edit(rate=2)[0]["args"]["args"]["rate"] == 2  # a whole number is a number
    assert edit(note="now text")[0]["args"]["args"]["note"] == "now text"  # null: any type
    assert edit(lines=[], meta={"a": 1}, urgent=True)
    for name, wrong in (("amount", 7.5), ("amount", True), ("amount", "7"), ("rate", "0.5"),
                        ("urgent", 1), ("lines", {}), ("meta", []), ("order", None)):
        with pytest.raises(agent_inbox.AnswerError) as caught:
            edit(**{name: wrong})
        assert caught.value.field == name
    with pytest.raises(agent_inbox.AnswerError, match="not an argument"):
        edit(other=1)


@pytest.mark.parametrize("body", [{"action": "edit"}, {"action": "edit", "values": {}},
                                  {"action": "edit", "values": None}])
def test_an_edit_without_values_is_refused_on_schema_and_agent_reviews(
        start_paused, make_user, body):
    api = ApiClient(make_user("reviewer"))
    for review in (start_paused(), _email_review(start_paused)):
        problem = _is_problem(api.post(f"/reviews/{review.pk}/decision", body), 422)
        assert "needs values" in problem["detail"] and "'approve'" in problem["detail"]
        assert "values" in problem["errors"]
    assert not Decision.objects.exists()


# ---------------------------------------------------------------- 5. inputs the run cannot take


def _claim(amount: Any) -> dict[str, Any]:
    return {"graph": "expense", "input": {"employee": "Ann", "vendor": "Cafe", "amount": amount}}


@pytest.fixture
def ops(make_user: Any) -> ApiClient:
    return ApiClient(make_user("ops"))


@pytest.mark.parametrize("where, body", [
    ("input.amount", {"graph": "web_review", "input": {"title": "t", "amount": 2**64}}),
    ("input.amount", {"graph": "web_review", "input": {"title": "t", "amount": -2**63 - 1}}),
    ("input.amount", {"graph": "web_review", "input": {"title": "t",
                                                       "amount": "99999999999999999999999"}}),
    ("input.steps", {"graph": "web_partial",
                     "input": {"subject": "s", "steps": 99999999999999999999999}}),
    ("input.amount", _claim(99999999999999999999999)),
])
def test_integers_beyond_64_bits_are_refused_naming_the_field(ops, where, body):
    problem = _is_problem(ops.post("/threads", body), 422)
    assert where in problem["errors"], problem
    assert "64-bit" in problem["errors"][where][0]
    assert not Thread.objects.exists()


def test_64_bit_integers_at_the_edges_are_taken(ops):
    for n in (2**63 - 1, -2**63):
        response = ops.post("/threads", {"graph": "web_partial",
                                         "input": {"subject": "s", "steps": n}})
        assert response.status_code == 201, response.content


def test_a_big_number_in_a_string_field_stays_a_string(ops):
    with runs.run_inline():
        response = ops.post("/threads", {"graph": "web_review",
                                         "input": {"title": "99999999999999999999999"}})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("text", ["1_000", "\u0661\u0662", "+5", "5.", ".5", "0x10", "1e",
                                  "\u0663.5", "5 5", "NaN", "Infinity"])
def test_numeric_strings_take_only_json_number_syntax(ops, text):
    """A Decimal field (its schema takes a number or a string, which pydantic converts)."""
    problem = _is_problem(ops.post("/threads", _claim(text)), 422)
    assert "input.amount" in problem["errors"], problem
    assert not Thread.objects.exists()


@pytest.mark.parametrize("text", ["12.50", "-3", "1e1", "5E-1", "12", " 12.5 "])
def test_plain_numeric_strings_are_still_taken(ops, text):
    response = ops.post("/threads", _claim(text))
    assert response.status_code == 201, response.content
    response = ops.post("/threads", {"graph": "web_review", "input": {"title": "t",
                                                                      "amount": text}})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_a_body_are_a_malformed_body(ops, constant):
    raw = '{"graph": "web_review", "input": {"title": "t", "amount": CONSTANT}}'.replace(
        "CONSTANT", constant)
    problem = _is_problem(ops.post("/threads", raw=raw), 400)
    assert constant in problem["detail"]
    assert not Thread.objects.exists()


# ---------------------------------------------------------------- 6. every error problem+json


def test_a_nul_in_an_api_address_is_a_problem(ops):
    _is_problem(ops.get("/threads?graph=a%00b"), 400)
    _is_problem(ops.get("/threads/a%00b"), 400)


def test_a_form_in_another_charset_is_a_problem(make_user):
    api = ApiClient(make_user("ops"))
    response = api.client.post(
        "/api/v1/threads", b"graph=web_review",
        content_type="application/x-www-form-urlencoded; charset=latin-1",
        HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert "UTF-8" in _is_problem(response, 415)["detail"]


def test_the_pages_keep_their_plain_text_answers(client_as):
    response = client_as("viewer").get("/threads/?q=a%00b")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")


# ---------------------------------------------------------------- 7. the OpenAPI document


def test_openapi_declares_problem_json_errors_and_the_idempotency_key(make_user):
    doc = ApiClient(make_user("viewer")).get("/openapi.json").json()
    posts = 0
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for status, response in op["responses"].items():
                media = set(response.get("content", {}))
                if int(status) >= 400:
                    assert media == {PROBLEM}, (method, path, status, media)
                else:
                    assert media <= {"application/json"}, (method, path, status, media)
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
            if method == "post":
                posts += 1
                assert "Idempotency-Key" in names, (method, path)
                ok = next(r for s, r in op["responses"].items() if s.startswith("2"))
                assert "Idempotent-Replayed" in ok.get("headers", {})
            else:
                assert "Idempotency-Key" not in names
    assert posts == 6
    again = ApiClient(make_user("viewer")).get("/openapi.json").json()
    assert again == doc  # built anew each time, not added to twice


# ---------------------------------------------------------------- 8. smaller ones


def test_an_empty_status_is_no_filter(ops, make_review):
    make_review()
    threads = ops.get("/threads?status=&graph=")
    assert threads.status_code == 200, threads.content
    assert threads.json()["items"] == ops.get("/threads").json()["items"]
    reviews = ops.get("/reviews?status=&graph=&cursor=")
    assert reviews.status_code == 200, reviews.content
    assert reviews.json() == ops.get("/reviews").json()
    _is_problem(ops.get("/threads?status=bogus"), 422)


@pytest.mark.parametrize("path", ["/threads", "/reviews/1/decision", "/runs/1/cancel"])
def test_an_empty_body_is_a_malformed_body(ops, path):
    problem = _is_problem(ops.post(path, raw=b""), 400)
    assert "empty" in problem["detail"]
