"""Reviews and run actions through the API: decisions resume the thread once, refusals say
why and write nothing."""

from __future__ import annotations

import pytest
from api_helpers import ApiClient

from approvals.models import Decision, ReviewRequest
from orchestration.runtime.models import Run


@pytest.fixture
def admin(make_user) -> ApiClient:
    return ApiClient(make_user("admin", username="ada"))


def test_open_reviews_are_listed_oldest_first_and_paged(admin, make_review):
    reviews = [make_review() for _ in range(3)]
    make_review(status="decided")
    first = admin.get("/reviews?limit=2").json()
    second = admin.get(f"/reviews?limit=2&cursor={first['next']}").json()
    assert [r["id"] for r in first["items"] + second["items"]] == [r.pk for r in reviews]
    assert second["next"] is None
    assert len(admin.get("/reviews?status=all").json()["items"]) == 4


def test_review_shape(admin, start_paused):
    review = start_paused()
    body = admin.get(f"/reviews/{review.pk}").json()
    assert body["status"] == "pending"
    assert body["description"] == "Check the title and the amount."
    assert body["actions"] == ["approve", "reject", "edit", "respond"]
    assert body["schema"]["required"] == ["title", "amount"]
    assert body["due_at"] is None  # no due time for this graph
    assert body["decision"] is None


def test_a_review_with_a_due_time_says_when_it_is_due(admin, start_paused, settings):
    import datetime as dt

    settings.STEPWISE_REVIEW_DUE_SECONDS = {"web_review": 3600}
    review = start_paused()
    assert review.due_at is not None
    body = admin.get(f"/reviews/{review.pk}").json()
    sent = dt.datetime.fromisoformat(body["due_at"])  # milliseconds on the wire
    assert abs(sent - review.due_at) < dt.timedelta(milliseconds=1)
    assert abs(sent - review.created_at - dt.timedelta(hours=1)) < dt.timedelta(seconds=5)
    listed = admin.get("/reviews").json()["items"]
    assert [r["due_at"] for r in listed] == [body["due_at"]]
    doc = admin.get("/openapi.json").json()
    assert "due_at" in doc["components"]["schemas"]["ReviewOut"]["properties"]


def test_decision_resumes_the_thread(admin, start_paused):
    review = start_paused()
    response = admin.post(f"/reviews/{review.pk}/decision",
                          {"action": "edit", "values": {"amount": 20}, "comment": "ok"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["review"]["status"] == "decided"
    assert body["review"]["decision"]["by"] == "ada"
    assert body["review"]["decision"]["values"]["amount"] == 20
    assert body["run"]["kind"] == "resume" and body["run"]["status"] == "queued"


def test_second_decision_is_409_naming_who_decided(admin, make_user, start_paused):
    review = start_paused()
    admin.post(f"/reviews/{review.pk}/decision", {"action": "approve"})
    response = ApiClient(make_user("admin")).post(f"/reviews/{review.pk}/decision",
                                                  {"action": "approve"})
    assert response.status_code == 409
    assert "ada" in response.json()["detail"]
    assert Run.objects.filter(kind="resume").count() == 1


def test_action_not_offered_is_422(admin, make_review):
    review = make_review()  # offers approve and reject only
    response = admin.post(f"/reviews/{review.pk}/decision", {"action": "edit"})
    assert response.status_code == 422
    assert "action" in response.json()["errors"]


def test_values_failing_the_schema_are_422_and_nothing_is_written(admin, start_paused):
    review = start_paused()
    response = admin.post(f"/reviews/{review.pk}/decision",
                          {"action": "edit", "values": {"amount": -5, "copies": 99}})
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"values.amount", "values.copies"}
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.PENDING
    assert not Decision.objects.exists()


def test_rejection_without_comment_is_422(admin, start_paused):
    review = start_paused()
    response = admin.post(f"/reviews/{review.pk}/decision", {"action": "reject"})
    assert response.status_code == 422 and "comment" in response.json()["errors"]


def test_unknown_review_is_404(admin):
    assert admin.get("/reviews/999999").status_code == 404


def test_cancel_a_waiting_run(admin, start_paused):
    review = start_paused()
    response = admin.post(f"/runs/{review.run_id}/cancel", {"reason": "not needed"})
    assert response.status_code == 200
    assert response.json()["run"]["status"] == "cancelled"
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.CANCELLED


@pytest.mark.parametrize("action", ["resume", "retry"])
def test_run_action_in_the_wrong_state_is_409(admin, start_paused, action):
    review = start_paused()
    response = admin.post(f"/runs/{review.run_id}/{action}", {"reason": "try"})
    assert response.status_code == 409
    assert Run.objects.count() == 1


def test_run_action_without_reason_is_422(admin, make_run):
    run = make_run()
    response = admin.post(f"/runs/{run.pk}/cancel", {"reason": ""})
    assert response.status_code == 422
    run.refresh_from_db()
    assert run.status == "waiting"


def test_review_list_stays_oldest_first_when_one_is_overdue(admin, make_review):
    import datetime as dt

    from django.utils import timezone

    first = make_review()
    overdue = make_review(due_at=timezone.now() - dt.timedelta(minutes=1))
    page = admin.get("/reviews?limit=1").json()
    rest = admin.get(f"/reviews?limit=1&cursor={page['next']}").json()
    assert [r["id"] for r in page["items"] + rest["items"]] == [first.pk, overdue.pk]


# -- numbers sent as strings: accepted as when starting a thread -------------------------


def test_an_edit_with_a_numeric_string_is_stored_as_a_number_and_reaches_the_state(
    admin, start_paused, django_capture_on_commit_callbacks
):
    """Seen in a user trial: {"amount": "199.99"} was refused ("'199.99' is not of type
    'number'") although starting a thread takes "250.00"."""
    from decimal import Decimal

    from orchestration.checkpoint import CheckpointConfig
    from orchestration.runtime import runs
    from orchestration.runtime.registry import get_graph
    from orchestration.runtime.savers import DjangoCheckpointSaver

    review = start_paused("expense", {"employee": "Bo", "vendor": "Rail Co",
                                      "amount": Decimal("250.00"), "description": "Train"})
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"/reviews/{review.pk}/decision",
                              {"action": "edit", "values": {"amount": "199.99"}})
    assert response.status_code == 200, response.content
    stored = Decision.objects.get(review=review).values["amount"]
    assert stored == 199.99 and isinstance(stored, float)
    graph = get_graph("expense").with_checkpoint_saver(DjangoCheckpointSaver())
    state = graph.get_state(CheckpointConfig(review.thread.thread_id)).values
    assert state.amount == Decimal("199.99") and state.payout_ref


@pytest.mark.parametrize("amount", ["lots", "12,50", "NaN", ""])
def test_an_edit_with_a_non_numeric_string_is_422_saying_so(admin, start_paused, amount):
    review = start_paused()
    response = admin.post(f"/reviews/{review.pk}/decision",
                          {"action": "edit", "values": {"amount": amount}})
    assert response.status_code == 422
    message = response.json()["errors"]["values.amount"][0]
    assert "is not a number" in message and "199.99" in message
    assert not Decision.objects.exists()


@pytest.mark.parametrize("status", ["open", "pending", "claimed", "cancelled", "superseded"])
def test_review_list_reads_what_the_orm_queryset_reads(admin, make_review, make_thread,
                                                       make_user, status):
    """The list's fixed statement (selectors.review_rows) gives the items and cursors that
    the queryset it replaces gives, page by page, for every status it serves and a graph."""
    import datetime as dt

    from django.utils import timezone

    from approvals.api import cursors, shapes
    from approvals.selectors import InboxFilter, review_filtered, review_rows

    at = timezone.now().replace(microsecond=123456)
    other = make_thread(graph_name="web_other")
    claimer = make_user("reviewer")
    for i, fields in enumerate([
        {}, {"status": "claimed", "claimed_by": claimer}, {"status": "cancelled"},
        {"status": "superseded"}, {"thread": other}, {"status": "decided"},
        {"kind": "respond", "payload": {"kind": "respond", "data": [1, {"a": None}]}},
        {"assignee": "finance", "due_at": at + dt.timedelta(hours=1),
         "payload": {"kind": "review", "description": "why", "schema": {"type": "object"},
                     "actions": ["approve", "edit", "bogus"], "data": {"n": 1.5}}},
        {}, {},
    ]):
        review = make_review(**fields)
        # ties on created_at: the keyset goes on by id
        ReviewRequest.objects.filter(pk=review.pk).update(
            created_at=at + dt.timedelta(seconds=i // 3))
    for graph in ("", "web_review", "web_other"):
        f = InboxFilter(graph=graph, status=status)
        qs = review_filtered(None, f).order_by("created_at", "pk")  # type: ignore[arg-type]
        cursor, after = None, None
        while True:
            expected, expected_next = cursors.page(qs, cursor, 2, "created_at",
                                                   descending=False)
            got, got_next = cursors.page_of(review_rows(f, after, 3), 2)
            assert [shapes.review_dict(r) for r in got] == [
                shapes.review_dict(r) for r in expected]
            assert got_next == expected_next
            if got_next is None:
                break
            cursor, after = got_next, cursors.decode(got_next)
    listed = admin.get(f"/reviews?status={status}&limit=200").json()["items"]
    assert [item["id"] for item in listed] == list(
        review_filtered(None, InboxFilter(status=status))  # type: ignore[arg-type]
        .order_by("created_at", "pk").values_list("pk", flat=True))


def test_an_edited_amount_beyond_the_ledger_is_422_and_the_run_waits_on(
    admin, start_paused, django_capture_on_commit_callbacks
):
    """Seen in a user trial: the review took an amount of 1e30, and the resumed run failed
    at once ("InvalidOperation") with the review decided. The review's schema now says
    where the ledger ends; the same review then takes the largest amount it holds."""
    from decimal import Decimal

    from orchestration.checkpoint import CheckpointConfig
    from orchestration.runtime import runs
    from orchestration.runtime.registry import get_graph
    from orchestration.runtime.savers import DjangoCheckpointSaver

    review = start_paused("expense", {"employee": "Bo", "vendor": "Rail Co",
                                      "amount": Decimal("250.00"), "description": "Train"})
    response = admin.post(f"/reviews/{review.pk}/decision",
                          {"action": "edit", "values": {"amount": 1e30}})
    assert response.status_code == 422
    assert "maximum of 9999999999.99" in response.json()["errors"]["values.amount"][0]
    assert not Decision.objects.exists()
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"/reviews/{review.pk}/decision",
                              {"action": "edit", "values": {"amount": "9999999999.99"}})
    assert response.status_code == 200, response.content
    graph = get_graph("expense").with_checkpoint_saver(DjangoCheckpointSaver())
    state = graph.get_state(CheckpointConfig(review.thread.thread_id)).values
    assert state.amount == Decimal("9999999999.99") and state.payout_ref
