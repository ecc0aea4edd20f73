"""Review requests from paused runs, decisions, and what the resumed run does with them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals.actions import DecisionInput, ReviewError, do_decide, review_payload
from approvals.models import Decision, ImmutableError, ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Run, Thread


def decide(client, review, django_capture_on_commit_callbacks, **data):
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("review-decide", args=[review.pk]), data)


def state_of(thread):
    from orchestration.checkpoint import CheckpointConfig
    from orchestration.savers import DjangoCheckpointSaver

    return DjangoCheckpointSaver().get_tuple(CheckpointConfig(thread.thread_id)).checkpoint.values


def test_paused_run_opens_one_review_with_its_payload(start_paused):
    review = start_paused()
    assert review.kind == "review"
    assert review.title == "Approve Spring report"
    assert review.payload["data"]["amount"] == 12.5
    assert review.node == "review"
    assert review.checkpoint_id == review.thread.head_checkpoint_id != ""


def test_interrupt_with_a_plain_value_opens_a_respond_review(start_paused):
    review = start_paused("web_question")
    assert review.kind == "respond"
    assert review.actions == ["respond"]
    assert review.payload["data"] == "What about the budget?"
    assert review.title == "What about the budget?"  # the inbox shows the question


@pytest.mark.parametrize(("value", "title"), [
    ("Approve the refund?", "Approve the refund?"),
    ("\n  Approve?\nDetails below.", "Approve?"),
    ({"question": "Refund 40 on A-1?", "amount": 40}, "Refund 40 on A-1?"),
    ({"task": "Review the summary", "llm_output": "..."}, "Review the summary"),
    ({"amount": 40}, "check asks for an answer"),
    ({"question": 3, "message": "   "}, "check asks for an answer"),
    ([1, 2], "check asks for an answer"),
    ("x" * 500, "x" * 199 + "…"),
])
def test_a_respond_review_is_titled_with_what_the_interrupt_asks(value, title):
    """A reviewer scanning the inbox reads the question (`interrupt("...")`, or the
    `question` of a dict as LangGraph's examples write it), not which node paused."""
    kind, payload = review_payload(value, "check")
    assert (kind, payload["title"], payload["data"]) == ("respond", title, value)


def test_approval_resumes_the_run_to_the_end(start_paused, client_as,
                                             django_capture_on_commit_callbacks):
    review = start_paused()
    client = client_as("reviewer")
    response = decide(client, review, django_capture_on_commit_callbacks, action="approve")
    assert response.status_code == 303
    review.thread.refresh_from_db()
    assert review.thread.status == Thread.Status.DONE
    values = state_of(review.thread)
    assert values["outcome"] == "approve"
    assert values["notes"] == ["drafted", "reviewed: approve", "published"]


def test_edit_then_approve_sends_the_edited_values(start_paused, client_as,
                                                   django_capture_on_commit_callbacks):
    review = start_paused()
    decide(client_as("reviewer"), review, django_capture_on_commit_callbacks, action="edit",
           value__title="Autumn report", value__amount="99.5", value__copies="2",
           value__priority='"high"')
    values = state_of(review.thread)
    assert (values["title"], values["amount"], values["outcome"]) == ("Autumn report", 99.5, "edit")
    decision = Decision.objects.get(review=review)
    assert decision.values == {"title": "Autumn report", "amount": 99.5, "copies": 2,
                               "priority": "high", "urgent": False}


def test_respond_sends_the_text_as_the_answer(start_paused, client_as,
                                              django_capture_on_commit_callbacks):
    review = start_paused("web_question")
    decide(client_as("reviewer"), review, django_capture_on_commit_callbacks,
           action="respond", text="Cut it by ten percent")
    answer = state_of(review.thread)["reply"]
    assert answer["action"] == "respond"
    assert answer["text"] == "Cut it by ten percent"


def test_decision_is_recorded_with_who_what_and_the_resumed_run(start_paused, make_user,
                                                                django_capture_on_commit_callbacks):
    review = start_paused()
    alice = make_user("reviewer", username="alice")
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        decision = do_decide(alice, review, DecisionInput("reject", comment="Too vague"))
    decision.refresh_from_db()
    assert (decision.decided_by, decision.action) == (alice, "reject")
    assert decision.comment == "Too vague"
    assert decision.resumed_run.kind == Run.Kind.RESUME
    assert state_of(review.thread)["reviewer"] == "alice"


def test_decision_cannot_be_changed_once_saved(make_review, make_user):
    review = make_review()
    decision = Decision.objects.create(review=review, decided_by=make_user(), action="approve")
    decision.comment = "changed my mind"
    with pytest.raises(ImmutableError):
        decision.save()


def test_second_approval_of_same_review_is_refused(make_review, make_user):
    review = make_review()
    do_decide(make_user("reviewer"), review, DecisionInput("approve"))
    with pytest.raises(ReviewError, match="already decided"):
        do_decide(make_user("reviewer"), review, DecisionInput("approve"))
    assert Run.objects.filter(thread=review.thread, kind=Run.Kind.RESUME).count() == 1


def test_stale_tab_decision_shows_a_clear_message_and_resumes_nothing(make_review, client_as,
                                                                      make_user):
    review = make_review()
    do_decide(make_user("reviewer", username="bob"), review, DecisionInput("approve"))
    response = client_as("reviewer").post(reverse("review-decide", args=[review.pk]),
                                          {"action": "reject", "comment": "no"})
    assert response.status_code == 409
    assert "already decided by bob" in response.content.decode()
    assert Run.objects.filter(thread=review.thread, kind=Run.Kind.RESUME).count() == 1


def test_reject_without_comment_is_refused_with_a_field_error(make_review, client_as):
    review = make_review()
    response = client_as("reviewer").post(reverse("review-decide", args=[review.pk]),
                                          {"action": "reject"})
    assert response.status_code == 400
    assert "Say why you reject it" in response.content.decode()
    review.refresh_from_db()
    assert review.status == "pending"


def test_edit_with_values_outside_the_schema_is_refused_per_field(start_paused, client_as):
    review = start_paused()
    response = client_as("reviewer").post(
        reverse("review-decide", args=[review.pk]),
        {"action": "edit", "value__title": "x" * 41, "value__amount": "-3", "value__copies": "1.5"},
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "Ensure this value has at most 40 characters" in page
    assert "greater than or equal to 0" in page
    assert "Enter a whole number" in page
    review.refresh_from_db()
    assert review.status == "pending"


def test_edit_missing_a_required_field_is_refused(start_paused, client_as):
    review = start_paused()
    response = client_as("reviewer").post(reverse("review-decide", args=[review.pk]),
                                          {"action": "edit", "value__title": "ok"})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()


def test_action_not_offered_by_the_payload_is_refused(make_review, client_as):
    review = make_review()  # offers approve and reject only
    response = client_as("reviewer").post(reverse("review-decide", args=[review.pk]),
                                          {"action": "respond", "text": "hi"})
    assert response.status_code == 400
    review.refresh_from_db()
    assert review.status == "pending"


def test_review_page_shows_payload_form_diff_and_history(start_paused, client_as):
    review = start_paused()
    page = client_as("reviewer").get(reverse("review", args=[review.pk])).content.decode()
    assert "Approve Spring report" in page
    assert "Check the title and the amount." in page
    assert 'name="value__amount"' in page and 'type="number"' in page
    assert 'name="value__urgent"' in page and 'type="checkbox"' in page
    assert "drafted" in page  # the diff against the previous checkpoint
    assert "run queued" in page  # the thread's history


def test_viewer_sees_the_review_without_a_decision_form(make_review, client_as):
    review = make_review()
    page = client_as("viewer").get(reverse("review", args=[review.pk])).content.decode()
    assert "Review " in page
    assert 'name="action"' not in page


def test_decided_review_shows_the_decision_in_the_thread_history(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    review = start_paused()
    client = client_as("reviewer")
    decide(client, review, django_capture_on_commit_callbacks, action="reject",
           comment="Numbers do not add up")
    page = client.get(reverse("thread", args=[review.thread.thread_id])).content.decode()
    assert "Numbers do not add up" in page
    assert "Reject" in page


def test_new_pause_supersedes_reviews_no_longer_asked(make_review, make_user):
    from approvals.actions import do_open_reviews
    from orchestration.types import Interrupt

    old = make_review()
    do_open_reviews(old.run, [Interrupt("other", {"kind": "review", "title": "Next"}, "n")])
    old.refresh_from_db()
    assert old.status == ReviewRequest.Status.SUPERSEDED
    assert ReviewRequest.objects.get(interrupt_id="other").status == "pending"


def test_redelivered_pause_reuses_the_open_review(make_review):
    from approvals.actions import do_open_reviews
    from orchestration.types import Interrupt

    review = make_review()
    do_open_reviews(review.run, [Interrupt(review.interrupt_id, {"kind": "review"}, "review")])
    assert ReviewRequest.objects.filter(thread=review.thread).count() == 1


def test_respond_review_page_asks_for_a_text_answer(start_paused, client_as):
    review = start_paused("web_question")
    page = client_as("reviewer").get(reverse("review", args=[review.pk])).content.decode()
    assert 'name="text"' in page
    assert "What about the budget?" in page
    assert 'value="respond"' in page and 'value="approve"' not in page


def test_a_lost_decision_answers_with_the_reason_and_a_link_not_the_whole_review(
        make_review, client_as, make_user):
    review = make_review()
    do_decide(make_user("reviewer", username="carol"), review, DecisionInput("approve"))
    response = client_as("reviewer").post(reverse("review-decide", args=[review.pk]),
                                          {"action": "approve"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "already decided by carol" in page
    assert f'href="{reverse("review", args=[review.pk])}"' in page
    assert 'id="history' not in page and "What to check" not in page


def test_access_review_reads_what_select_related_reads(make_user, make_review):
    """access_review's fixed statement (approvals.rowread) builds the instances the ORM's
    select_related builds: every field of the review, its thread, run and claimer, converted
    the same way (JSON, timestamps), None where there is no run or claimer."""
    from datetime import timedelta

    from django.http import Http404
    from django.utils import timezone

    from approvals.access import access_review

    viewer = make_user("reviewer")
    claimed = make_review(status="claimed", claimed_by=viewer, claimed_at=timezone.now(),
                          due_at=timezone.now() + timedelta(days=1), assignee="reviewer")
    bare = make_review()
    ReviewRequest.objects.filter(pk=bare.pk).update(run=None)

    def fields(obj):
        return None if obj is None else [getattr(obj, f.attname)
                                         for f in obj._meta.concrete_fields]

    for review in (claimed, bare):
        expected = ReviewRequest.objects.select_related("thread", "run", "claimed_by").get(
            pk=review.pk)
        got = access_review(viewer, review.pk, for_update=False)
        assert fields(got) == fields(expected)
        assert got.payload == expected.payload and isinstance(got.payload, dict)
        for name in ("thread", "run", "claimed_by"):
            assert ReviewRequest._meta.get_field(name).is_cached(got)  # no query to follow it
            assert fields(getattr(got, name)) == fields(getattr(expected, name))
        assert got._state.adding is False and got._state.db == expected._state.db
    with pytest.raises(Http404):
        access_review(viewer, bare.pk + 1000, for_update=False)
