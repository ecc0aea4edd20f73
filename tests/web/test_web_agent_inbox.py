"""Agent Inbox payloads: an agent that pauses with HumanInterrupt(s) gets exactly the actions
its config allows, and its answer in Agent Inbox's HumanResponse shape."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals import agent_inbox
from approvals.models import Decision, ReviewRequest
from demo.workflows.email_agent import EmailTask
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.models import Thread
from orchestration.savers import DjangoCheckpointSaver

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _agent_graphs(settings):
    settings.STEPWISE_GRAPHS = {**settings.STEPWISE_GRAPHS,
                                "agent_list": "reviewer_graphs:agent_list_graph"}


def values(thread):
    return DjangoCheckpointSaver().get_tuple(CheckpointConfig(thread.thread_id)).checkpoint.values


def email_review(start_paused):
    return start_paused("email_agent", EmailTask(sender="Mia Wong", sender_email="mia@ex.com",
                                                 subject="Kickoff", message="Meet?"))


def answer(client, review, capture, **data):
    with runs.run_inline(), capture(execute=True):
        return client.post(reverse("review-agent-answer", args=[review.pk]), data, **HTMX)


def test_a_human_interrupt_becomes_a_review_offering_the_allowed_actions(start_paused, client_as):
    review = email_review(start_paused)
    assert review.payload["format"] == "agent_inbox"
    assert review.actions == ["approve", "edit", "respond", "ignore"]
    page = client_as("reviewer").get(reverse("review", args=[review.pk])).content.decode()
    for kind in ("accept", "edit", "response", "ignore"):
        assert f'name="r0-type" value="{kind}"' in page
    assert 'name="r0-arg-to"' in page and "mia@ex.com" in page
    assert "<strong>Mia Wong</strong>" in page  # the Markdown description, rendered


def test_accept_sends_the_action_request_back_as_it_was(start_paused, client_as,
                                                        django_capture_on_commit_callbacks):
    review = email_review(start_paused)
    answer(client_as("reviewer"), review, django_capture_on_commit_callbacks,
           **{"r0-type": "accept"})
    decision = Decision.objects.get(review=review)
    sent = decision.answer("x")
    assert sent == [{"type": "accept", "args": {"action": "send_email",
                                                "args": review.payload["data"]}}]
    assert decision.action == "approve"
    review.thread.refresh_from_db()
    assert review.thread.status == Thread.Status.DONE
    assert values(review.thread)["outcome"] == "sent"


def test_edit_sends_the_edited_args(start_paused, client_as, django_capture_on_commit_callbacks):
    review = email_review(start_paused)
    args = review.payload["data"]
    answer(client_as("reviewer"), review, django_capture_on_commit_callbacks,
           **{"r0-type": "edit", "r0-arg-to": "team@ex.com", "r0-arg-subject": args["subject"],
              "r0-arg-body": "Short reply"})
    state = values(review.thread)
    assert state["sent"] == {"to": "team@ex.com", "subject": args["subject"],
                             "body": "Short reply"}


def test_a_response_goes_back_as_text_and_the_agent_asks_again(
        start_paused, client_as, django_capture_on_commit_callbacks):
    review = email_review(start_paused)
    answer(client_as("reviewer"), review, django_capture_on_commit_callbacks,
           **{"r0-type": "response", "r0-response": "Offer Wednesday instead"})
    assert Decision.objects.get(review=review).answer("x") == [
        {"type": "response", "args": "Offer Wednesday instead"}]
    again = ReviewRequest.objects.get(thread=review.thread, status="pending")
    assert "Offer Wednesday instead" in again.payload["data"]["body"]


def test_an_action_the_config_does_not_allow_is_refused(start_paused, client_as,
                                                        django_capture_on_commit_callbacks):
    from reviewer_graphs import Calls

    review = start_paused("agent_list", Calls())
    response = answer(client_as("reviewer"), review, django_capture_on_commit_callbacks,
                      **{"r0-type": "accept", "r1-type": "accept"})
    assert response.status_code == 400
    assert "does not allow" in response.content.decode() or "Select a valid choice" in \
        response.content.decode()
    assert not Decision.objects.filter(review=review).exists()


def test_a_list_of_requests_is_answered_with_a_list_of_responses(
        start_paused, client_as, django_capture_on_commit_callbacks):
    from reviewer_graphs import Calls

    review = start_paused("agent_list", Calls())
    page = client_as("reviewer").get(reverse("review", args=[review.pk])).content.decode()
    assert 'name="r1-type" value="response"' in page
    assert 'name="r1-type" value="accept"' not in page  # notify does not allow accept
    answer(client_as("reviewer"), review, django_capture_on_commit_callbacks,
           **{"r0-type": "edit", "r0-arg-title": "Printer jam", "r0-arg-priority": "1",
              "r1-type": "response", "r1-response": "Not needed"})
    assert values(review.thread)["responses"] == [
        {"type": "edit", "args": {"action": "create_ticket",
                                  "args": {"title": "Printer jam", "priority": 1}}},
        {"type": "response", "args": "Not needed"},
    ]


def test_bulk_approve_accepts_an_agent_request_where_allowed(
        start_paused, client_as, django_capture_on_commit_callbacks):
    review = email_review(start_paused)
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        client_as("reviewer").post(reverse("reviews-bulk"), {
            "action": "approve", "reviews": [review.pk], "confirm": "1"})
    assert Decision.objects.get(review=review).answer("x")[0]["type"] == "accept"


def test_other_payloads_are_not_taken_for_agent_inbox_requests():
    assert agent_inbox.parse({"action_request": {"action": "x", "args": {}}}) is None
    assert agent_inbox.parse([]) is None
    assert agent_inbox.parse({"kind": "review"}) is None
    none_allowed = {"action_request": {"action": "x", "args": {}},
                    "config": dict.fromkeys(agent_inbox.CONFIG_KEYS.values(), False)}
    assert agent_inbox.parse(none_allowed) is None


def test_the_http_api_answers_an_agent_review_with_accept_or_ignore(
        start_paused, make_user, django_capture_on_commit_callbacks):
    from api_helpers import ApiClient

    review = email_review(start_paused)
    api = ApiClient(make_user("reviewer"))
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        ok = api.post(f"/reviews/{review.pk}/decision", {"action": "ignore"})
    assert ok.status_code == 200
    assert Decision.objects.get(review=review).answer("x") == [{"type": "ignore", "args": None}]
    assert values(review.thread)["outcome"] == "ignored"


def test_the_http_api_edits_and_responds_to_an_agent_request_as_the_page_does(
        start_paused, make_user, django_capture_on_commit_callbacks):
    """Seen in a trial: the review offered edit and respond, and the API refused both (409,
    "needs the review's page"), so an automation could only accept or ignore the e-mail.
    A review of one request takes them: edit changes the args it names, respond sends text."""
    from api_helpers import ApiClient

    api = ApiClient(make_user("reviewer"))
    review = email_review(start_paused)
    args = review.payload["data"]
    for body, says in (
        ({"action": "edit", "values": {"cc": "x@ex.com"}}, "'cc' is not an argument"),
        ({"action": "edit"}, "needs values"),
    ):
        refused = api.post(f"/reviews/{review.pk}/decision", body)
        assert refused.status_code == 422, refused.content
        assert says in refused.json()["detail"] and not Decision.objects.exists()
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        ok = api.post(f"/reviews/{review.pk}/decision",
                      {"action": "edit", "values": {"subject": "Kickoff on Tuesday"}})
    assert ok.status_code == 200, ok.content
    edited = {**args, "subject": "Kickoff on Tuesday"}
    assert Decision.objects.get(review=review).answer("x") == [
        {"type": "edit", "args": {"action": "send_email", "args": edited}}]
    assert values(review.thread)["sent"] == edited

    review = email_review(start_paused)
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        ok = api.post(f"/reviews/{review.pk}/decision",
                      {"action": "respond", "text": "Say Wednesday instead."})
    assert ok.status_code == 200, ok.content
    assert Decision.objects.get(review=review).answer("x") == [
        {"type": "response", "args": "Say Wednesday instead."}]
    assert values(review.thread)["feedback"][-1] == "Say Wednesday instead."


def test_the_http_api_sends_several_requests_to_the_review_page_for_edit_and_respond(
        start_paused, make_user):
    from api_helpers import ApiClient
    from reviewer_graphs import Calls

    review = start_paused("agent_list", Calls())
    refused = ApiClient(make_user("reviewer")).post(
        f"/reviews/{review.pk}/decision", {"action": "respond", "text": "hm"})
    assert refused.status_code == 422
    assert "of 2 requests needs the review's page" in refused.json()["detail"]
    assert not Decision.objects.exists()
