"""Every API endpoint, each role allowed or refused, through the same access checks as the
pages. The table is checked against the API's own route list: a new endpoint without a row
fails `test_every_endpoint_has_a_permission_row`."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import ApiClient

from approvals.api.api import routes

ALL = ("viewer", "reviewer", "ops", "admin")
DECIDERS = ("reviewer", "admin")
OPERATORS = ("ops", "admin")
REASON = {"reason": "checked by the permission test"}

# (method, route) -> (body, roles allowed)
ENDPOINTS: dict[tuple[str, str], tuple[Any, tuple[str, ...]]] = {
    ("GET", "/graphs"): (None, ALL),
    ("POST", "/threads"): ({"graph": "web_review", "input": {"title": "P"}}, OPERATORS),
    ("GET", "/threads"): (None, ALL),
    ("GET", "/threads/{thread_id}"): (None, ALL),
    ("GET", "/threads/{thread_id}/checkpoints"): (None, ALL),
    ("GET", "/threads/{thread_id}/checkpoints/{checkpoint_id}"): (None, ALL),
    ("POST", "/threads/{thread_id}/checkpoints/{checkpoint_id}/fork"): (REASON, OPERATORS),
    ("GET", "/reviews"): (None, ALL),
    ("GET", "/reviews/{review_id}"): (None, ALL),
    ("POST", "/reviews/{review_id}/decision"): ({"action": "approve"}, DECIDERS),
    ("GET", "/runs/{run_id}"): (None, ALL),  # a run is part of its thread
    ("POST", "/runs/{run_id}/resume"): (REASON, OPERATORS),
    ("POST", "/runs/{run_id}/retry"): (REASON, OPERATORS),
    ("POST", "/runs/{run_id}/cancel"): (REASON, OPERATORS),
}
CASES = [(method, route, role, role in allowed)
         for (method, route), (_, allowed) in ENDPOINTS.items() for role in (*ALL, None)]


def test_every_endpoint_has_a_permission_row():
    assert set(routes()) == set(ENDPOINTS)


@pytest.fixture
def ids(start_paused) -> dict[str, Any]:
    review = start_paused()
    return {"thread_id": review.thread.thread_id, "checkpoint_id": review.checkpoint_id,
            "review_id": review.pk, "run_id": review.run_id}


@pytest.mark.parametrize(("method", "route", "role", "allowed"), CASES,
                         ids=[f"{c[0]} {c[1]}-{c[2] or 'no-role'}" for c in CASES])
def test_endpoint_allows_exactly_its_roles(make_user, ids, method, route, role, allowed):
    api = ApiClient(make_user(role))
    body = ENDPOINTS[(method, route)][0]
    response = api.call(method, route.format(**ids), body)
    assert response["Content-Type"].startswith(
        "application/problem+json" if response.status_code >= 400 else "application/json")
    if allowed:
        assert response.status_code not in (401, 403), response.content[:300]
        assert response.status_code < 500, response.content[:300]
    else:
        assert response.status_code == 403, response.content[:300]


@pytest.mark.parametrize(("method", "route"), list(ENDPOINTS))
def test_endpoint_without_a_token_is_401(ids, method, route):
    response = ApiClient().call(method, route.format(**ids), ENDPOINTS[(method, route)][0])
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_session_login_is_not_api_auth(client_as, ids):
    response = client_as("admin").get("/api/v1/graphs")
    assert response.status_code == 401


def test_review_assigned_to_a_group_cannot_be_decided_by_a_reviewer_outside_it(
    make_review, make_user
):
    review = make_review(assignee="finance")
    response = ApiClient(make_user("reviewer")).post(f"/reviews/{review.pk}/decision",
                                                     {"action": "approve"})
    assert response.status_code == 403
    assert "finance" in response.json()["detail"]


def test_a_reviewer_reads_the_run_its_decision_started(start_paused, make_user,
                                                       django_capture_on_commit_callbacks):
    """Found in an API trial: the decision's response names its run, and GET /runs/{id}
    with the same reviewer token was a 403 naming the ops console. The console's own page
    of the run stays the ops roles'."""
    from django.test import Client
    from django.urls import reverse

    from orchestration.runtime import runs

    rita = make_user("reviewer", username="rita2")
    review = start_paused()
    api = ApiClient(rita)
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        decided = api.post(f"/reviews/{review.pk}/decision", {"action": "approve"})
    assert decided.status_code == 200, decided.content
    run_id = decided.json()["run"]["id"]
    read = api.get(f"/runs/{run_id}")
    assert read.status_code == 200 and read.json()["id"] == run_id
    page = Client()
    page.force_login(rita)
    assert page.get(reverse("run", args=[run_id])).status_code == 403
