"""The API's checkpoint list reads the columns it shows from one statement and renders its
items without pydantic (approvals.api.checkpoint_list): its responses are byte for byte the
ones ninja's validation of `CheckpointList` gave for the ORM's rows, over a real tree with a
decision, a fork and metadata naming odd actors; `?limit=` pages the same
items."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from api_helpers import ApiClient, answer_then_fork
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from approvals.api import shapes
from approvals.api.api import api
from orchestration.runtime.models import Checkpoint, Thread


def _old_response(thread: Thread) -> Any:
    """The list as the route answered before the fast path: the ORM's rows (JSON decoded,
    times made aware), `shapes.checkpoint_item` of each, validated by the route's response
    model, dumped and rendered by the route's operation itself."""
    operation = copy.copy(
        api._routers[0][1].path_operations["/threads/{thread_id}/checkpoints"].operations[0])
    operation.api = api
    username = f"created_by__{get_user_model().USERNAME_FIELD}"
    rows = list(
        Checkpoint.objects.filter(thread=thread, checkpoint_ns="").order_by("checkpoint_id")
        .values_list("pk", "parent_id", "checkpoint_id", "step", "source", "next",
                     "created_at", username, "extra__user", "extra__reviewer")
    )
    ids = {row[0]: row[2] for row in rows}
    items = [shapes.checkpoint_item(cid, ids.get(parent), *rest)
             for _, parent, cid, *rest in rows]
    request = RequestFactory().get("/api/v1/threads/x/checkpoints")
    return operation._result_to_response(
        request, {"items": items, "next": None}, api.create_temporal_response(request))


@pytest.fixture
def tree(make_user, start_paused, django_capture_on_commit_callbacks) -> Thread:
    """A thread answered by a reviewer and forked by ops, whose rows then name odd actors
    and carry times with and without microseconds."""
    review = start_paused()
    answer_then_fork(review, ApiClient(make_user("reviewer", username="rhea")),
                     ApiClient(make_user("ops", username="ops-zoë")),
                     django_capture_on_commit_callbacks)
    rows = list(Checkpoint.objects.filter(thread=review.thread).order_by("checkpoint_id"))
    assert len(rows) >= 5
    at = dt.datetime(2026, 12, 7, 14, 50, 40, 98389, tzinfo=dt.UTC)
    odd: list[dict[str, Any]] = [
        {"created_at": at.replace(microsecond=0)},  # a whole second: no fraction
        {"created_at": at.replace(microsecond=500), "extra": {"user": 42}},  # ".000"
        {"extra": {"user": "", "reviewer": "Zoë 北京 \"q\""}, "next": ["a", "b\n", "ü"]},
        {"extra": {"reviewer": {"name": "x"}}, "next": []},
        {"created_at": at.replace(year=2027, month=1, day=1, hour=0, minute=0, second=0)},
    ]
    for row, fields in zip(rows, odd, strict=False):
        # made by nobody: the list names the metadata's actor
        Checkpoint.objects.filter(pk=row.pk).update(created_by=None, **fields)
    return review.thread


def test_the_list_renders_what_validating_its_rows_rendered(ops_client, tree):
    got = ops_client.get(f"/threads/{tree.thread_id}/checkpoints")
    expected = _old_response(tree)
    assert got.status_code == expected.status_code == 200
    assert got["Content-Type"] == expected["Content-Type"]
    assert got.content == expected.content
    items = got.json()["items"]
    assert {"42", "Zoë 北京 \"q\"", "{'name': 'x'}"} <= {i["actor"] for i in items}
    assert {"2026-12-07T14:50:40Z", "2026-12-07T14:50:40.000Z"} <= {
        i["created_at"] for i in items}


def test_limit_pages_the_same_items_and_later_pages_name_earlier_parents(ops_client, tree):
    whole = ops_client.get(f"/threads/{tree.thread_id}/checkpoints").json()
    assert whole["next"] is None
    pages, cursor = [], None
    while True:
        query = f"/threads/{tree.thread_id}/checkpoints?limit=2"
        page = ops_client.get(query + (f"&cursor={cursor}" if cursor else "")).json()
        pages.append(page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    assert all(len(p) == 2 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 2
    assert [i for p in pages for i in p] == whole["items"]
    # a parent listed on an earlier page is still named
    assert pages[1][0]["parent_id"] in {i["id"] for i in pages[0]}


def test_bad_paging_parameters_say_what_to_send(ops_client, tree):
    base = f"/threads/{tree.thread_id}/checkpoints"
    for cursor in ("%25%25", "-_-_"):
        bad = ops_client.get(base + f"?cursor={cursor}")
        assert bad.status_code == 400, cursor
        assert "Start again without ?cursor=" in bad.json()["detail"]
    assert ops_client.get(base + "?limit=0").status_code == 422
    assert ops_client.get(base + "?limit=1001").status_code == 422
    assert ops_client.get(base + "?limit=1000").status_code == 200


@pytest.fixture
def ops_client(make_user) -> ApiClient:
    return ApiClient(make_user("ops"))


def test_a_cursor_from_another_list_is_a_400_saying_so(ops_client, tree, make_thread):
    """Found by hand: a checkpoint list's cursor sent to the threads list was refused with
    Python's "too many values to unpack"; each list now says the cursor is not one of its."""
    make_thread()  # a second thread: the threads list has a second page
    base = f"/threads/{tree.thread_id}/checkpoints"
    from_tree = ops_client.get(base + "?limit=1").json()["next"]
    from_threads = ops_client.get("/threads?limit=1").json()["next"]
    assert from_tree and from_threads
    for path, cursor in (("/threads?limit=1", from_tree), ("/reviews?limit=1", from_tree),
                         (base + "?limit=1", from_threads)):
        refused = ops_client.get(f"{path}&cursor={cursor}")
        assert refused.status_code == 400, path
        assert refused.json()["detail"] == (
            f"cursor {cursor[:40]!r} is not one this API gave out: it holds no position. "
            "Start again without ?cursor=.")
