"""A decision and a start send only the statements they need, and answer with what they
wrote: the API's answers match the rows read afterwards, a refused decision leaves nothing,
and the statement counts of the cycle's requests stay where they were brought."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import ApiClient
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.models import Decision, ReviewRequest
from orchestration.runtime.inputs import RunInput
from orchestration.runtime.models import Run, Thread


@pytest.fixture
def admin(make_user) -> ApiClient:
    return ApiClient(make_user("admin", username="ada"))


def _statements(call: Any) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    return response, [q["sql"] for q in ctx.captured_queries]


def test_api_decision_answers_what_reading_the_review_and_run_back_shows(admin, start_paused):
    review = start_paused()
    body = admin.post(f"/reviews/{review.pk}/decision",
                      {"action": "edit", "values": {"amount": 20}, "comment": "ok"}).json()
    assert body["review"] == admin.get(f"/reviews/{review.pk}").json()
    assert body["run"] == admin.get(f"/runs/{body['run']['id']}").json()
    assert body["review"]["status"] == "decided" and body["run"]["status"] == "queued"


def test_api_decision_joining_a_queued_run_answers_with_that_run(admin, start_paused):
    review = start_paused()
    # another answer's run, not started yet: this decision's answer joins it
    queued = Run.objects.create(thread=review.thread, kind=Run.Kind.RESUME,
                                input=RunInput.resume_with({"other": "yes"}).encode())
    body = admin.post(f"/reviews/{review.pk}/decision", {"action": "approve"}).json()
    assert body["run"]["id"] == queued.pk
    assert body["run"] == admin.get(f"/runs/{queued.pk}").json()
    assert body["review"] == admin.get(f"/reviews/{review.pk}").json()


def test_api_start_answers_with_the_run_as_stored(make_user):
    starter = ApiClient(make_user("ops"))
    body = starter.post("/threads", {"graph": "web_review",
                                     "input": {"title": "Q3", "amount": 3}}).json()
    assert body["run"] == starter.get(f"/runs/{body['run']['id']}").json()
    thread = Thread.objects.get(thread_id=body["thread_id"])
    assert thread.status == Thread.Status.RUNNING
    assert list(thread.runs.values_list("status", flat=True)) == [Run.Status.QUEUED]


def test_start_checks_no_active_run_and_moves_no_paused_one(make_user):
    """A thread created in the same transaction has no run to look for or close."""
    starter = ApiClient(make_user("ops"))
    response, sql = _statements(lambda: starter.post(
        "/threads", {"graph": "web_review", "input": {"title": "Q3", "amount": 3}}))
    assert response.status_code == 201, response.content
    assert not [s for s in sql if s.startswith("SELECT 1 AS") and "orchestration_run" in s]
    assert not [s for s in sql if s.startswith('UPDATE "orchestration_thread"')]
    assert not [s for s in sql if "'answered'" in s]


def test_form_decision_sends_no_savepoint_and_no_active_run_read(make_user, start_paused):
    review = start_paused()
    client = Client()
    client.force_login(make_user("reviewer"))
    response, sql = _statements(lambda: client.post(
        reverse("review-decide", args=[review.pk]), {"action": "approve", "comment": ""}))
    assert response.status_code == 303
    # the run's insert does nothing if a run is active: no read before it, no savepoint
    # around it (the test's own transaction makes do_decide's block a savepoint)
    assert sum(s.startswith("SAVEPOINT") for s in sql) == int(connection.in_atomic_block)
    active_reads = [s for s in sql if s.startswith("SELECT") and 'FROM "orchestration_run"' in s]
    assert not active_reads
    # no endpoint configured: the decision's insert said so, no query for them
    assert not [s for s in sql if "stepwise_api_webhookendpoint\" e" in s]
    assert Run.objects.filter(thread=review.thread, status=Run.Status.QUEUED).count() == 1


def test_refused_answer_rolls_back_the_decision_without_a_savepoint_of_its_own(
    make_user, start_paused
):
    """do_decide's own block undoes the review's update and the decision row when the
    answer cannot be delivered (here: the thread was cancelled meanwhile)."""
    review = start_paused()
    Thread.objects.filter(pk=review.thread.pk).update(status=Thread.Status.CANCELLED)
    client = Client()
    client.force_login(make_user("reviewer"))
    response = client.post(reverse("review-decide", args=[review.pk]),
                           {"action": "approve", "comment": ""})
    assert response.status_code == 409
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.PENDING
    assert not Decision.objects.filter(review=review).exists()
    assert not Run.objects.filter(thread=review.thread, status=Run.Status.QUEUED).exists()


def test_decided_review_page_reads_the_decision_with_its_author(make_user, start_paused):
    review = start_paused()
    user = make_user("reviewer", username="dora")
    client = Client()
    client.force_login(user)
    client.post(reverse("review-decide", args=[review.pk]), {"action": "approve", "comment": ""})
    response, sql = _statements(lambda: client.get(reverse("review", args=[review.pk])))
    assert "dora" in response.content.decode()
    # the decision by its review, with the review (access_review_page; not the history's
    # statement, which reads all the thread's)
    decision_reads = [s for s in sql if s.startswith("SELECT") and 'JOIN "approvals_decision"'
                      in s and "d.review_id = r.id" in s]
    assert len(decision_reads) == 1 and "du.id = d.decided_by_id" in decision_reads[0]
    assert not any('FROM "approvals_decision" d LEFT OUTER JOIN' in s for s in sql)
    # the only user read is the signed-in one's (no auth cache in tests)
    assert sum(s.startswith("SELECT") and 'FROM "auth_user" ' in s for s in sql) == 1


def test_thread_history_in_one_statement_keeps_what_it_shows(
    make_user, start_paused, django_capture_on_commit_callbacks
):
    from approvals.selectors import thread_history
    from orchestration.runtime.events import publish

    review = start_paused()
    thread = review.thread
    client = Client()
    client.force_login(make_user("reviewer", username="dora"))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("review-decide", args=[review.pk]),
                    {"action": "reject", "comment": "Numbers do not add up"})
        publish("run_progress", thread=thread, data={"message": "quiet"})
        publish("run_failed", thread=thread, data={"error": "boom"}, reason="why not")
    with CaptureQueriesContext(connection) as ctx:
        history = thread_history(thread)
    assert len(ctx.captured_queries) == 1
    assert history[0].kind == "run_failed" and history[0].text == "run failed: boom"
    assert history[0].reason == "why not" and history[0].actor == ""
    assert all(item.kind != "run_progress" for item in history)
    decided = [item for item in history if item.kind == "decision"]
    assert len(decided) == 1
    assert decided[0].text == f"Reject — {review.title or review.node}"
    assert (decided[0].actor, decided[0].reason, decided[0].review_pk) == (
        "dora", "Numbers do not add up", review.pk)
    queued = next(item for item in history if item.kind == "run_queued")
    assert queued.actor == "dora" and queued.text.startswith("run queued (run ")
    assert all(item.at.tzinfo is not None for item in history)
    assert [item.at for item in history] == sorted((item.at for item in history), reverse=True)
    assert len(thread_history(thread, limit=2)) == 2


def test_review_decision_reads_what_the_orm_reads(make_user, start_paused):
    from approvals.selectors import review_decision

    review = start_paused()
    assert review_decision(review.pk) is None
    client = Client()
    client.force_login(make_user("reviewer", username="dora"))
    client.post(reverse("review-decide", args=[review.pk]),
                {"action": "approve", "comment": "fine by me"})
    expected = Decision.objects.select_related("decided_by").get(review=review)
    got = review_decision(review.pk)

    def fields(obj):
        return [getattr(obj, f.attname) for f in obj._meta.concrete_fields]

    assert fields(got) == fields(expected) and got.values == expected.values
    assert Decision._meta.get_field("decided_by").is_cached(got)
    assert fields(got.decided_by) == fields(expected.decided_by)


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Chatham", "America/St_Johns"])
def test_history_times_print_what_the_date_filter_printed(zone: str) -> None:
    """_history.html prints `at_iso`/`at_short` for `at|date:'c'` and `at|date:"m-d H:i:s"`."""
    import datetime as dt
    import zoneinfo

    from django.template import Context, Template
    from django.utils import timezone

    from approvals.selectors import HistoryItem

    filters = Template("""{{ at|date:'c' }} {{ at|date:"m-d H:i:s" }}""")
    times = [dt.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
             dt.datetime(2026, 3, 1, 0, 0, 0, tzinfo=dt.UTC),
             dt.datetime(2026, 7, 4, 12, 30, 5, 123, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))]
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        for at in times:
            item = HistoryItem(at=at, kind="run_started", actor="", text="")
            assert f"{item.at_iso} {item.at_short}" == filters.render(Context({"at": at}))
