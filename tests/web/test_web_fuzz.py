"""Property: whatever body is posted to any form of the site, the answer is never a 500.

Bodies mix the forms' own field names with made-up ones, and values with JSON at and past
the limits (deep nesting, 5,000-digit integers, NaN, NUL characters), long text, and lists.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvals.models import ReviewRequest
from orchestration.runtime.models import Run

FIELDS = [
    "action", "comment", "text", "reason", "next", "confirm", "runs", "as_node",
    "value__title", "value__amount", "value__copies", "value__priority", "value__urgent",
    "value__items", "field__title", "field__amount", "field__notes", "field__tags",
    "field__outcome", "username", "password",
]
NASTY = [
    "[" * 3000 + "]" * 3000, "1" * 5000, "NaN", "-Infinity", "1e999", '"\\u0000"', "\x00",
    '{"a": ' * 100 + "1" + "}" * 100, "edit", "approve", "reject", "respond", "on", "-1",
    "99999999999999999999999999", "https://evil.example/", "//evil.example", "x" * 5000,
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
).map(lambda v: json.dumps(v, allow_nan=True))
values = st.one_of(st.text(max_size=40), json_values, st.sampled_from(NASTY))
bodies = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(min_size=1, max_size=12),
    values | st.lists(values, min_size=1, max_size=3),
    max_size=6,
)
FORMS = ["review-decide", "review-redecide", "review-claim", "review-unclaim",
         "checkpoint-fork", "run-action", "ops-bulk", "login"]


@pytest.fixture
def targets(start_paused, make_review, make_run, make_user):
    review = start_paused()
    decided = make_review(status=ReviewRequest.Status.DECIDED, checkpoint_id="c1")
    run = make_run(status=Run.Status.FAILED)
    client = Client(raise_request_exception=True)
    client.force_login(make_user("admin"))
    urls = {
        "review-decide": reverse("review-decide", args=[review.pk]),
        "review-redecide": reverse("review-redecide", args=[decided.pk]),
        "review-claim": reverse("review-claim", args=[review.pk]),
        "review-unclaim": reverse("review-unclaim", args=[review.pk]),
        "checkpoint-fork": reverse(
            "checkpoint-fork", args=[review.thread.thread_id, review.checkpoint_id]
        ),
        "run-action": reverse("run-action", args=[run.pk, "retry"]),
        "ops-bulk": reverse("ops-bulk"),
        "login": reverse("login"),
    }
    return client, urls


@settings(max_examples=120, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
])
@given(form=st.sampled_from(FORMS), body=bodies, htmx=st.booleans(),
       urlencoded=st.booleans())
def test_no_form_answers_any_body_with_a_500(targets, form: str, body: dict[str, Any],
                                             htmx: bool, urlencoded: bool):
    client, urls = targets
    headers = {"HX-Request": "true"} if htmx else {}
    if urlencoded:
        from urllib.parse import urlencode

        response = client.post(urls[form], urlencode(body, doseq=True), headers=headers,
                               content_type="application/x-www-form-urlencoded")
    else:
        response = client.post(urls[form], body, headers=headers)
    assert response.status_code < 500, (form, body, response.content[:500])


PARAMS = ["status", "graph", "assignee", "page", "q", "checkpoint", "against", "field", "part"]


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
])
@given(page=st.sampled_from(["inbox", "threads", "thread", "ops", "checkpoint-state",
                             "review-data", "checkpoint"]),
       query=st.dictionaries(st.sampled_from(PARAMS), values, max_size=4), htmx=st.booleans())
def test_no_page_answers_any_query_with_a_500(targets, page: str, query: dict[str, str],
                                              htmx: bool):
    client, urls = targets
    review = ReviewRequest.objects.exclude(checkpoint_id="c1").order_by("pk").first()
    args = {"thread": [review.thread.thread_id], "review-data": [review.pk],
            "checkpoint-state": [review.thread.thread_id, review.checkpoint_id],
            "checkpoint": [review.thread.thread_id, review.checkpoint_id]}.get(page, [])
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.get(reverse(page, args=args), query, headers=headers)
    assert response.status_code < 500, (page, query, response.content[:500])
