"""Bad input gets a clear answer and writes nothing: JSON past the limits, values of the wrong
type, oversized text, foreign `next=` targets, non-UTF-8 forms, unknown websocket paths."""

from __future__ import annotations

import pytest
import shown
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse

from approvals.actions import DecisionInput, ReviewError, do_decide
from approvals.consumers import CLOSE_NOT_FOUND
from approvals.jsonvalues import MAX_TEXT_CHARS
from approvals.models import Decision, ReviewRequest
from config.routing import websocket_urlpatterns
from orchestration.runtime.inputs import RunInput
from orchestration.runtime.models import Checkpoint, Run

DEEP = "[" * 5000 + "]" * 5000
HUGE_INT = "1" * 5000
BAD_JSON = {
    "deep": (DEEP, "levels deep"),
    "huge-int": (HUGE_INT, "too long"),
    "nan": ("NaN", "NaN and Infinity are not JSON numbers"),
    "infinity": ('[1, -Infinity]', "NaN and Infinity are not JSON numbers"),
    "overflow": ("1e999", "too large for a number"),
}


def counts() -> tuple[int, int, int]:
    return Decision.objects.count(), Run.objects.count(), Checkpoint.objects.count()


@pytest.fixture
def json_review(make_review):
    """An open review whose schema has an array field, edited as JSON text."""
    return make_review(payload={
        "kind": "review", "title": "Items", "data": {"items": [1, 2]},
        "actions": ["approve", "edit"],
        "schema": {"type": "object", "properties": {"items": {"type": "array"}}},
    })


@pytest.mark.parametrize("case", BAD_JSON, ids=list(BAD_JSON))
def test_decision_json_value_past_a_limit_is_refused_on_its_field(client_as, json_review, case):
    raw, reason = BAD_JSON[case]
    before = counts()
    response = client_as("reviewer").post(
        reverse("review-decide", args=[json_review.pk]), {"action": "edit", "value__items": raw}
    )
    assert response.status_code == 400
    field_errors = shown.field_errors(response, "value__items")
    assert any(reason in e for e in field_errors), field_errors
    assert counts() == before
    json_review.refresh_from_db()
    assert json_review.status == ReviewRequest.Status.PENDING


@pytest.mark.parametrize("case", BAD_JSON, ids=list(BAD_JSON))
def test_fork_json_value_past_a_limit_is_refused_on_its_field(start_paused, client_as, case):
    raw, reason = BAD_JSON[case]
    review = start_paused()
    url = reverse("checkpoint-fork", args=[review.thread.thread_id, review.checkpoint_id])
    before = counts()
    response = client_as("ops").post(url, {"field__notes": raw, "reason": "try"})
    assert response.status_code == 400
    errors = shown.field_errors(response, "field__notes")
    assert any(reason in e for e in errors), errors
    assert counts() == before


@pytest.mark.parametrize(("field", "raw", "expected"), [
    ("amount", "twelve", "Enter a number, such as 2.5."),
    ("amount", "inf", "Enter a number, such as 2.5."),
    ("notes", '["ok", 3]', "Not a valid list[str] for field 'notes'"),
])
def test_fork_value_of_the_wrong_type_is_refused_against_the_state_schema(
    start_paused, client_as, field, raw, expected
):
    review = start_paused()
    url = reverse("checkpoint-fork", args=[review.thread.thread_id, review.checkpoint_id])
    before = counts()
    response = client_as("ops").post(url, {f"field__{field}": raw, "reason": "try"})
    assert response.status_code == 400
    errors = shown.field_errors(response, f"field__{field}")
    assert any(expected in e for e in errors), errors
    assert counts() == before


def test_fork_value_of_the_right_type_is_accepted(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    review = start_paused()
    url = reverse("checkpoint-fork", args=[review.thread.thread_id, review.checkpoint_id])
    with django_capture_on_commit_callbacks(execute=False):
        response = client_as("ops").post(url, {"field__amount": "30", "reason": "more"})
    assert response.status_code == 303
    assert Run.objects.filter(thread=review.thread, kind=Run.Kind.FORK).count() == 1


def test_fork_form_sent_back_unchanged_applies_nothing(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    """Browsers send textareas with CRLF line ends: an untouched field is still unchanged; so
    is every typed field sent back as shown (the float 12.5 as "12.5", text as itself)."""
    review = start_paused()
    url = reverse("checkpoint-fork", args=[review.thread.thread_id, review.checkpoint_id])
    client = client_as("ops")
    page = client.get(url)
    fields = {name: text.replace("\n", "\r\n")
              for name, text in shown.textareas(page).items() if name.startswith("field__")}
    typed = {name: value for name, value in shown.input_values(page).items()
             if name.startswith("field__")}
    assert set(fields) == {"field__notes", "field__tags"}
    assert typed == {"field__title": "Spring report", "field__amount": "12.5",
                     "field__outcome": "", "field__reviewer": ""}
    fields.update(typed)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {**fields, "reason": "x"})
    assert response.status_code == 303
    fork = Run.objects.get(thread=review.thread, kind=Run.Kind.FORK)
    assert RunInput.decode(fork.input).values == {}


def test_non_finite_value_is_refused_by_the_action_with_its_reason(make_user, json_review):
    user = make_user("reviewer")
    with pytest.raises(ReviewError, match="NaN and Infinity are not JSON numbers"):
        do_decide(user, json_review, DecisionInput("edit", values={"items": [float("nan")]}))
    assert not Decision.objects.exists()


# ---------------------------------------------------------------- text sizes


def test_comment_over_the_limit_is_refused_with_a_form_error(client_as, make_review):
    review = make_review()
    response = client_as("reviewer").post(
        reverse("review-decide", args=[review.pk]),
        {"action": "reject", "comment": "x" * (MAX_TEXT_CHARS + 1)},
    )
    assert response.status_code == 400
    error = shown.field_errors(response, "comment")[0]
    assert f"at most {MAX_TEXT_CHARS:,}" in error or f"at most {MAX_TEXT_CHARS}" in error
    assert not Decision.objects.exists()


def test_fork_reason_over_the_limit_is_refused(start_paused, client_as):
    review = start_paused()
    url = reverse("checkpoint-fork", args=[review.thread.thread_id, review.checkpoint_id])
    before = counts()
    response = client_as("ops").post(url, {"reason": "y" * 1_000_000})
    assert response.status_code == 400
    assert shown.field_errors(response, "reason")
    assert counts() == before


def test_ops_action_reason_over_the_limit_is_refused(client_as, make_run):
    run = make_run(status=Run.Status.FAILED)
    response = client_as("ops").post(
        reverse("run-action", args=[run.pk, "retry"]), {"reason": "z" * 1_000_000}
    )
    assert response.status_code == 303
    assert Run.objects.count() == 1
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED


# ---------------------------------------------------------------- next=


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/x", "http://evil.example", "javascript:alert(1)",
])
@pytest.mark.parametrize("view", ["review-claim", "review-unclaim"])
def test_next_to_another_site_is_ignored(client_as, make_review, target, view):
    review = make_review()
    client = client_as("reviewer")
    if view == "review-unclaim":
        client.post(reverse("review-claim", args=[review.pk]))
    response = client.post(reverse(view, args=[review.pk]), {"next": target})
    assert response.status_code == 303
    assert response["Location"] == reverse("review", args=[review.pk])
    htmx = client.post(reverse(view, args=[review.pk]), {"next": target}, HTTP_HX_REQUEST="true")
    assert htmx["HX-Redirect"] == reverse("review", args=[review.pk])


def test_next_to_a_path_on_this_site_is_followed(client_as, make_review):
    review = make_review()
    response = client_as("reviewer").post(
        reverse("review-claim", args=[review.pk]), {"next": "/?status=open"}
    )
    assert response["Location"] == "/?status=open"


# ---------------------------------------------------------------- encodings and sockets


@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "no-such-charset"])
def test_form_in_another_charset_is_refused_with_415(make_user, make_review, settings, charset):
    settings.DEBUG = True  # the debug page re-read the body and turned Django's 400 into a 500
    review = make_review()
    client = Client(raise_request_exception=False)
    client.force_login(make_user("reviewer"))
    body = "action=approve&comment=hi".encode("utf-16" if charset == "utf-16" else "ascii")
    response = client.generic(
        "POST", reverse("review-decide", args=[review.pk]), body,
        content_type=f"application/x-www-form-urlencoded; charset={charset}",
    )
    assert response.status_code == 415
    assert b"UTF-8" in response.content
    assert not Decision.objects.exists()


def test_form_declared_utf8_is_accepted(client_as, make_review):
    review = make_review()
    response = client_as("reviewer").generic(
        "POST", reverse("review-claim", args=[review.pk]), b"next=/",
        content_type="application/x-www-form-urlencoded; charset=UTF-8",
    )
    assert response.status_code == 303


@pytest.mark.django_db(transaction=True)
async def test_unknown_websocket_path_is_closed_with_4404():
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/nothing-here/")
    connected, code = await communicator.connect()
    assert (connected, code) == (False, CLOSE_NOT_FOUND)
    await communicator.disconnect()


@pytest.mark.parametrize(("page", "param"), [
    ("threads", "q"), ("threads", "status"), ("inbox", "graph"), ("inbox", "assignee"),
    ("ops", "status"),
])
def test_nul_in_a_query_parameter_is_refused_with_400(client_as, page, param):
    response = client_as("admin").get(reverse(page), {param: "a\x00b"})
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_nul_in_the_path_is_refused_with_400(client_as):
    response = client_as("admin").get("/threads/a%00b/")
    assert response.status_code == 400
