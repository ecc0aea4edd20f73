"""The decision path's round trips: an API decision is do_decide's own transaction (no
block of the API's around it unless an Idempotency-Key needs one), and a decision on a
review already decided when the request read it is refused without a transaction, with
the same message and nothing written. Integrity as before: all or nothing, one decision
per review, also for two API requests at once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from api_helpers import ApiClient
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.access import OVERRIDE_CLAIM
from approvals.actions import DecisionInput, ReviewError, do_decide
from approvals.api.models import IdempotencyRecord
from approvals.models import Decision, ReviewRequest
from orchestration.runtime.models import Run, Thread


def _statements(call: Any) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    return response, [q["sql"] for q in ctx.captured_queries]


def test_api_decision_sends_only_the_savepoint_the_form_decision_sends(make_user, start_paused):
    review = start_paused()
    api = ApiClient(make_user("reviewer"))
    response, sql = _statements(
        lambda: api.post(f"/reviews/{review.pk}/decision", {"action": "approve"}))
    assert response.status_code == 200, response.content
    # none of answer_thread's (its insert does nothing if a run is active); the test's own
    # transaction makes do_decide's block a savepoint. None from a block around do_decide.
    assert sum(s.startswith("SAVEPOINT") for s in sql) == int(connection.in_atomic_block)
    assert Decision.objects.filter(review=review).count() == 1
    assert Run.objects.filter(thread=review.thread, status=Run.Status.QUEUED).count() == 1


@pytest.mark.parametrize("key", [None, "refused-once"])
def test_refused_api_decision_writes_nothing_with_or_without_a_key(make_user, start_paused, key):
    """The answer cannot be delivered (the thread was cancelled meanwhile): do_decide's
    transaction undoes the review's update, the decision and the run; with a key, no
    record of the refusal is kept either (a retry is decided afresh)."""
    review = start_paused()
    Thread.objects.filter(pk=review.thread.pk).update(status=Thread.Status.CANCELLED)
    api = ApiClient(make_user("reviewer"))
    headers = {"Idempotency-Key": key} if key else {}
    response = api.post(f"/reviews/{review.pk}/decision", {"action": "approve"}, **headers)
    assert response.status_code == 409, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.PENDING
    assert not Decision.objects.filter(review=review).exists()
    assert not Run.objects.filter(thread=review.thread, status=Run.Status.QUEUED).exists()
    assert not IdempotencyRecord.objects.exists()


def test_api_decision_with_a_key_is_stored_with_it_and_replayed(make_user, start_paused):
    review = start_paused()
    api = ApiClient(make_user("reviewer"))
    first = api.post(f"/reviews/{review.pk}/decision", {"action": "approve"},
                     **{"Idempotency-Key": "k1"})
    again = api.post(f"/reviews/{review.pk}/decision", {"action": "approve"},
                     **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert Decision.objects.filter(review=review).count() == 1


def test_decision_on_a_review_read_as_decided_is_refused_without_a_transaction(
    make_user, start_paused
):
    review = start_paused()
    winner_client = Client()
    winner_client.force_login(make_user("reviewer", username="wanda"))
    winner_client.post(reverse("review-decide", args=[review.pk]), {"action": "approve"})
    api = ApiClient(make_user("reviewer"))
    assert api.get(f"/reviews/{review.pk}").status_code == 200  # the token's first use noted
    response, sql = _statements(
        lambda: api.post(f"/reviews/{review.pk}/decision", {"action": "approve"}))
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "already decided by wanda" in detail and "(approve)" in detail
    # past authentication: the review, then the decision with its author; no transaction
    assert not [s for s in sql if s.startswith(("UPDATE", "INSERT", "SAVEPOINT", "BEGIN"))]
    reads = [s for s in sql if '"approvals_' in s]
    assert len(reads) == 2, [s[:90] for s in sql]
    assert '"approvals_decision" d LEFT OUTER JOIN' in reads[1]
    form = Client()
    form.force_login(make_user("reviewer"))
    page = form.post(reverse("review-decide", args=[review.pk]), {"action": "approve"})
    assert page.status_code == 409 and b"already decided by wanda" in page.content
    assert Decision.objects.filter(review=review).count() == 1
    assert Run.objects.filter(thread=review.thread, kind=Run.Kind.RESUME).count() == 1


@pytest.mark.parametrize("status", [ReviewRequest.Status.CANCELLED,
                                    ReviewRequest.Status.SUPERSEDED])
def test_decision_on_a_closed_review_says_so_and_writes_nothing(make_user, make_review, status):
    review = make_review()
    ReviewRequest.objects.filter(pk=review.pk).update(status=status)
    review.refresh_from_db()
    with pytest.raises(ReviewError, match=f"is {status.label.lower()}"):
        do_decide(make_user("reviewer"), review, DecisionInput(action="approve"))
    assert not Decision.objects.filter(review=review).exists()


def test_a_stale_open_read_still_loses_on_the_conditional_update(make_user, make_review):
    """The race proper: read open, decided by someone else before the update."""
    review = make_review()
    stale = ReviewRequest.objects.get(pk=review.pk)
    do_decide(make_user("reviewer", username="first"), review, DecisionInput(action="approve"))
    with pytest.raises(ReviewError, match="already decided by first"):
        do_decide(make_user("reviewer"), stale, DecisionInput(action="approve"))
    # re-read for the message, as refresh_from_db reads it
    assert _fields(stale) == _fields(ReviewRequest.objects.get(pk=review.pk))
    assert stale.status == ReviewRequest.Status.DECIDED
    assert stale.thread.pk == review.thread.pk and stale.run.pk == review.run.pk
    assert Decision.objects.filter(review=review).count() == 1


def _fields(obj: Any) -> list[Any]:
    return [getattr(obj, f.attname) for f in obj._meta.concrete_fields]


def test_a_decision_refused_by_the_one_per_review_constraint_rereads_the_review(
    make_user, make_review
):
    """The constraint's IntegrityError path: everything rolled back, the review re-read and
    no trace of the refused (unsaved) decision left cached on it."""
    review = make_review()
    earlier = Decision.objects.create(review=review, decided_by=make_user("reviewer"),
                                      action="approve")
    ReviewRequest.objects.filter(pk=review.pk).update(claimed_by=make_user("reviewer"))
    admin = make_user("admin")
    assert admin.has_perm(OVERRIDE_CLAIM)  # past the claim: refused by the constraint
    with pytest.raises(ReviewError, match="not applied"):
        do_decide(admin, review, DecisionInput(action="approve"))
    assert _fields(review) == _fields(ReviewRequest.objects.get(pk=review.pk))
    assert review.status == ReviewRequest.Status.PENDING  # the update rolled back
    assert review.claimed_by is not None and review.claimed_by.pk == review.claimed_by_id
    assert review.decision.pk == earlier.pk  # read anew, not the refused one
    assert not Run.objects.filter(thread=review.thread, kind=Run.Kind.RESUME).exists()


@pytest.mark.django_db(transaction=True)
def test_two_api_decisions_at_once_resume_the_run_once(make_user, make_review):
    review = make_review()
    tokens = [ApiClient(make_user("reviewer")).token for _ in range(3)]
    barrier = threading.Barrier(len(tokens))
    statuses: list[int] = []

    def post(token: str) -> None:
        api = ApiClient(raw_token=token)
        barrier.wait()
        statuses.append(api.post(f"/reviews/{review.pk}/decision",
                                 {"action": "approve"}).status_code)
        connections.close_all()

    threads = [threading.Thread(target=post, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200, 409, 409]
    assert Decision.objects.filter(review=review).count() == 1
    assert Run.objects.filter(thread=review.thread, kind=Run.Kind.RESUME).count() == 1
