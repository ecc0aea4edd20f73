"""Bad input never gives a 500: every refusal is problem+json with the right status, and
nothing is written."""

from __future__ import annotations

import json

import pytest
from api_helpers import ApiClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.runtime.models import Run, Thread


@pytest.fixture
def admin(make_user) -> ApiClient:
    return ApiClient(make_user("admin"))


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.mark.parametrize("debug", [False, True])
def test_malformed_json_is_400(admin, settings, debug):
    settings.DEBUG = debug  # with DEBUG on (bin/demo) the detail said it twice
    detail = problem(admin.post("/threads", raw="{not json"), 400)["detail"]
    assert detail.count("not valid JSON") == 1, detail


def test_body_over_the_limit_is_413(admin, settings):
    settings.STEPWISE_API_MAX_BODY_BYTES = 1000
    body = {"graph": "web_review", "input": {"title": "x" * 2000}}
    problem(admin.post("/threads", body), 413)
    assert not Thread.objects.exists()


def test_json_nested_too_deeply_is_400(admin):
    deep = "[" * 500 + "]" * 500
    body = problem(admin.post("/threads", raw=f'{{"graph": "web_review", "input": {deep}}}'), 400)
    assert "nested" in body["detail"]


def test_json_nested_beyond_the_parser_is_400(admin, settings):
    settings.STEPWISE_API_MAX_BODY_BYTES = 10_000_000
    problem(admin.post("/threads", raw="[" * 200_000), 400)


@pytest.mark.parametrize(("where", "body"), [
    ("input.title", {"graph": "web_review", "input": {"title": "a\x00b", "amount": 7}}),
    ("title", {"graph": "web_review", "input": {"title": "ab", "amount": 7}, "title": "x\x00"}),
    ("input.tags.1", {"graph": "web_review", "input": {"title": "ab", "tags": ["a", "\x00"]}}),
    ("input.a\\u0000", {"graph": "web_review", "input": {"a\x00": 1}}),
])
def test_a_nul_character_anywhere_in_a_body_is_422_naming_where(admin, where, body):
    """Seen on PostgreSQL, which stores no NUL in text or jsonb: a thread title holding one
    was a 500, and one in the input was taken and failed the run at its review."""
    found = problem(admin.post("/threads", body), 422)
    assert found["errors"] == {where: ["NUL characters cannot be stored."]}
    assert "remove it" in found["detail"]
    assert not Thread.objects.exists() and not Run.objects.exists()


def test_the_text_backslash_u0000_is_not_a_nul_character(admin):
    raw = '{"graph": "web_review", "input": {"title": "C:\\\\u0000 is a path", "amount": 7}}'
    response = admin.post("/threads", raw=raw)
    assert response.status_code == 201, response.content
    assert Thread.objects.get().thread_id == response.json()["thread_id"]


def test_a_nul_character_in_a_decision_or_a_fork_is_422_and_changes_nothing(admin, start_paused):
    from approvals.models import Decision, ReviewRequest

    review = start_paused()
    fork = f"/threads/{review.thread.thread_id}/checkpoints/{review.checkpoint_id}/fork"
    for path, body, where in (
        (f"/reviews/{review.pk}/decision", {"action": "reject", "comment": "no\x00"}, "comment"),
        (f"/reviews/{review.pk}/decision", {"action": "edit", "values": {"title": "\x00"}},
         "values.title"),
        (fork, {"values": {"title": "ab"}, "reason": "r\x00"}, "reason"),
        (fork, {"values": {"title": "a\x00b"}, "reason": "r"}, "values.title"),
    ):
        assert set(problem(admin.post(path, body), 422)["errors"]) == {where}
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.PENDING and not Decision.objects.exists()
    assert not Run.objects.filter(kind="fork").exists()


def test_wrong_method_is_405_with_allow(admin):
    body = problem(admin.client.delete("/api/v1/threads",
                                       HTTP_AUTHORIZATION=f"Bearer {admin.token}"), 405)
    assert "GET" in body["detail"]


def test_unknown_path_is_404(admin):
    problem(admin.get("/nothing/here"), 404)


def test_extra_body_field_is_422(admin):
    body = problem(admin.post("/threads", {"graph": "web_review", "input": {}, "x": 1}), 422)
    assert "x" in body["errors"]


def test_missing_body_field_is_422(admin):
    body = problem(admin.post("/threads", {"input": {}}), 422)
    assert "graph" in body["errors"]


def test_non_integer_id_in_path_is_a_problem_not_a_500(admin):
    assert admin.get("/reviews/abc").status_code in (404, 422)


def test_bad_cursor_is_400(admin):
    problem(admin.get("/reviews?cursor=%%%"), 400)
    problem(admin.get("/threads?cursor=bm90IGpzb24"), 400)


def test_bad_idempotency_key_is_400(admin):
    problem(admin.post("/threads", {"graph": "web_review", "input": {}},
                       **{"Idempotency-Key": "k" * 300}), 400)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
POSTS = ["/threads", "/reviews/{review}/decision", "/runs/{run}/cancel",
         "/threads/{thread}/checkpoints/{checkpoint}/fork"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON | st.dictionaries(
    st.sampled_from(["graph", "input", "action", "values", "reason", "comment", "text",
                     "thread_id", "title"]), JSON, max_size=5),
    path=st.sampled_from(POSTS))
def test_any_json_body_gives_a_4xx_or_success_never_a_500(admin, start_paused_once, body, path):
    ids = start_paused_once
    response = admin.post(path.format(**ids), raw=json.dumps(body))
    assert response.status_code < 500, response.content[:300]


@pytest.fixture
def start_paused_once(start_paused):
    review = start_paused()
    return {"review": review.pk, "run": review.run_id, "thread": review.thread.thread_id,
            "checkpoint": review.checkpoint_id}


def test_refused_requests_write_nothing(admin, start_paused):
    review = start_paused()
    runs_before = Run.objects.count()
    admin.post(f"/reviews/{review.pk}/decision", {"action": "edit", "values": {"amount": "x"}})
    admin.post("/threads", {"graph": "web_review", "input": {"amount": []}})
    admin.post(f"/runs/{review.run_id}/retry", {"reason": "x"})
    assert Run.objects.count() == runs_before
    assert Thread.objects.count() == 1
