"""Approve decides on the values as asked: a form posted with edited values and the Approve
button (Enter in a field submits the first button, Approve) is refused, never approved with
the edits dropped; the same form posted unchanged approves, on every demo review."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from shown import decision_form

from approvals.models import ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Run


def post(client, review, data, capture):
    with runs.run_inline(), capture(execute=True):
        return client.post(reverse("review-decide", args=[review.pk]), data)


def test_approve_with_an_edited_amount_is_refused_and_loses_nothing(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    review = start_paused()
    client = client_as("reviewer")
    shown = decision_form(client.get(reverse("review", args=[review.pk])))
    assert shown["value__amount"] == "12.5"
    refused = post(client, review, {**shown, "value__amount": "80", "action": "approve"},
                   django_capture_on_commit_callbacks)
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "You changed Amount" in page and "Save edits and approve" in page
    assert 'value="80"' in page  # what was typed stays in the form
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.PENDING
    assert not Run.objects.filter(thread=review.thread, kind=Run.Kind.RESUME).exists()
    # the same values with the edit button are what get approved
    edited = post(client, review, {**shown, "value__amount": "80", "action": "edit"},
                  django_capture_on_commit_callbacks)
    assert edited.status_code in (200, 302, 303)
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.DECIDED
    assert review.decision.values["amount"] == 80


def test_approve_without_the_value_fields_still_approves(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    review = start_paused()
    done = post(client_as("reviewer"), review, {"action": "approve"},
                django_capture_on_commit_callbacks)
    assert done.status_code in (200, 302, 303)
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.DECIDED


def test_accepting_an_agent_request_with_edited_args_is_refused(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    from demo.workflows.email_agent import EmailTask

    review = start_paused("email_agent", EmailTask(
        sender="Mia Wong", sender_email="mia@ex.com", subject="Kickoff", message="Meet?"))
    client = client_as("reviewer")
    shown = decision_form(client.get(reverse("review", args=[review.pk])), "agent-answer")
    # Enter in a field submits the first button: Accept
    edited = {**shown, "r0-type": "accept", "r0-arg-subject": "Edited subject line"}
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        refused = client.post(reverse("review-agent-answer", args=[review.pk]), edited)
    assert refused.status_code == 400
    assert "You changed" in refused.content.decode()
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.PENDING
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("review-agent-answer", args=[review.pk]), {**edited, "r0-type": "edit"})
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.DECIDED
    assert review.decision.answer("x")[0]["args"]["args"]["subject"] == "Edited subject line"


@pytest.mark.django_db(transaction=True)
def test_every_demo_review_approves_as_rendered(client, django_capture_on_commit_callbacks):
    """The rendered form posted back unchanged counts as unchanged for every field type the
    demo's schemas use (money, enums, dates, lists, booleans): no false refusal."""
    call_command("seed_demo", stdout=StringIO())
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="ada"))
    open_reviews = list(ReviewRequest.objects.filter(status=ReviewRequest.Status.PENDING))
    assert len(open_reviews) >= 5
    for review in open_reviews:
        page = client.get(reverse("review", args=[review.pk]))
        shown = decision_form(page)
        action = "approve" if "approve" in review.actions else review.actions[0]
        # a response is typed only to respond: Approve with one is refused (round 30)
        text = shown.get("text") or ("ok" if action == "respond" else "")
        answer = post(client, review, {**shown, "action": action, "text": text},
                      django_capture_on_commit_callbacks)
        assert answer.status_code in (200, 302, 303), (review.title, answer.content.decode()[:3000])
        review.refresh_from_db()
        assert review.status == ReviewRequest.Status.DECIDED, review.title


@pytest.mark.django_db(transaction=True)
def test_emptying_a_required_text_is_refused_before_the_run_sees_it(
    client, django_capture_on_commit_callbacks
):
    """The refund's order id is required but has no minLength: "" passed JSON Schema and the
    resumed run failed on it (found by hand). It is refused on the form now."""
    from django.contrib.auth import get_user_model

    call_command("seed_demo", stdout=StringIO())
    client.force_login(get_user_model().objects.get(username="rita"))
    review = ReviewRequest.objects.get(thread__thread_id="demo-support-1")
    page = client.get(reverse("review", args=[review.pk]))
    shown = decision_form(page)
    assert shown.get("value__order_id"), (page.status_code, page.content.decode()[:5000])
    refused = post(client, review, {**shown, "value__order_id": "", "action": "edit"},
                   django_capture_on_commit_callbacks)
    assert refused.status_code == 400
    assert "This field is required." in refused.content.decode()
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.PENDING
    assert not Run.objects.filter(thread=review.thread, status=Run.Status.FAILED).exists()


@pytest.mark.django_db(transaction=True)
def test_approve_with_a_typed_response_is_refused_and_keeps_the_text(
    client, django_capture_on_commit_callbacks
):
    """Trial round 30: on the publishing review a typed Response, then `a`, recorded an
    approval with no text: the response was dropped without a word. Approve is refused now,
    saying to send it with Respond or clear it; Respond sends it; a reject's reason is not a
    response and is kept with the reject."""
    from django.contrib.auth import get_user_model

    call_command("seed_demo", stdout=StringIO())
    client.force_login(get_user_model().objects.get(username="rita"))
    first, second = [r for r in ReviewRequest.objects.filter(
        status=ReviewRequest.Status.PENDING).order_by("pk")
        if "respond" in r.actions and "approve" in r.actions
        and r.payload.get("format") != "agent_inbox"][:2]
    shown = decision_form(client.get(reverse("review", args=[first.pk])))
    typed = {**shown, "text": "Fix the typo in the title first", "action": "approve"}
    refused = post(client, first, typed, django_capture_on_commit_callbacks)
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "You wrote a response, but Approve does not send it" in page
    assert "Fix the typo in the title first</textarea>" in page  # nothing typed is lost
    first.refresh_from_db()
    assert first.status == ReviewRequest.Status.PENDING
    post(client, first, {**typed, "action": "respond"}, django_capture_on_commit_callbacks)
    first.refresh_from_db()
    assert first.decision.text == "Fix the typo in the title first"

    shown = decision_form(client.get(reverse("review", args=[second.pk])))
    # a reject with a typed response would drop the response: refused the same way
    both = {**shown, "action": "reject", "comment": "Too salesy", "text": "Shorter, please"}
    refused = post(client, second, both, django_capture_on_commit_callbacks)
    assert refused.status_code == 400
    assert "You wrote a response, but Reject does not send it" in refused.content.decode()
    rejected = post(client, second, {**shown, "action": "reject", "comment": "Too salesy"},
                    django_capture_on_commit_callbacks)
    assert rejected.status_code in (200, 302, 303)
    second.refresh_from_db()
    assert second.decision.comment == "Too salesy"


def test_accepting_an_agent_request_with_a_typed_response_is_refused(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    """Agent Inbox: a typed response, then Accept, sent the agent's draft as it was."""
    from demo.workflows.email_agent import EmailTask

    review = start_paused("email_agent", EmailTask(
        sender="Mia Wong", sender_email="mia@ex.com", subject="Kickoff", message="Meet?"))
    client = client_as("reviewer")
    shown = decision_form(client.get(reverse("review", args=[review.pk])), "agent-answer")
    typed = {**shown, "r0-type": "accept", "r0-response": "Say Tuesday instead"}
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        refused = client.post(reverse("review-agent-answer", args=[review.pk]), typed)
    assert refused.status_code == 400
    assert "You wrote a response, but Accept does not send it" in refused.content.decode()
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.PENDING
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("review-agent-answer", args=[review.pk]),
                    {**typed, "r0-type": "response"})
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.DECIDED
    assert review.decision.answer("x")[0] == {"type": "response", "args": "Say Tuesday instead"}
