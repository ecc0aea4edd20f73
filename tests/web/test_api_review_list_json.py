"""The API review list reads the payload keys it shows (selectors.review_rows) and renders
its rows without pydantic (shapes.listed_review_dicts): its responses are byte for byte the
ones ninja's validation of `ReviewList` gave for the ORM's reviews, over reviews with
unicode, nulls, nested data, odd numbers and times."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from api_helpers import ApiClient
from django.test import RequestFactory
from django.utils import timezone

from approvals.api import cursors, shapes
from approvals.api.api import api
from approvals.models import ReviewRequest
from approvals.selectors import InboxFilter, review_filtered

PAYLOADS: list[dict[str, Any]] = [
    {"kind": "review", "description": "Prüfen: 10 € \"quoted\"\nnew line \\ 🧾",
     "data": {"name": "Zoë 北京", "nested": {"list": [1, 2.5, None, True, {"deep": [[]]}],
                                           "empty": {}}, "none": None},
     "actions": ["approve", "edit", "bogus", "respond"],
     "schema": {"type": "object", "properties": {"x": {"type": "number", "minimum": 0}}}},
    {"kind": "review", "data": None, "schema": "not a dict", "description": 12},
    {"kind": "review", "data": [1e100, -0.0, 0.1, 123456789012345678901234567890, -7]},
    {"kind": "review", "data": "just text \u2028 \x01 tab\t", "actions": []},
    {"kind": "respond", "data": {"question": "why?"}, "description": None},
    {},  # no data, no actions: the defaults
    {"kind": "review", "data": {"b": 1, "a": 2, "1": 3, "": 4}},  # key order as stored
]


def _old_response(f: InboxFilter, cursor: str | None, limit: int) -> Any:
    """The list as ninja answered before the fast path: the reviews the ORM reads (whole
    payloads), review_dict of each, validated by the route's response model, dumped and
    rendered by the route's operation itself."""
    # the router's own operation (unbound: the served one is a clone bound to the api)
    operation = copy.copy(api._routers[0][1].path_operations["/reviews"].operations[0])
    operation.api = api
    qs = review_filtered(None, f).order_by("created_at", "pk")  # type: ignore[arg-type]
    rows, nxt = cursors.page(qs, cursor, limit, "created_at", descending=False)
    request = RequestFactory().get("/api/v1/reviews")
    return operation._result_to_response(
        request, {"items": [shapes.review_dict(r) for r in rows], "next": nxt},
        api.create_temporal_response(request))


@pytest.mark.parametrize("status", ["open", "pending", "claimed", "cancelled", "superseded"])
def test_the_list_renders_what_validating_its_rows_rendered(make_user, make_review, make_thread,
                                                            status):
    admin = ApiClient(make_user("admin", username="ada"))
    claimer = make_user("reviewer")
    at = timezone.now().replace(microsecond=987654)
    other = make_thread(graph_name="web_other")
    extras: list[dict[str, Any]] = [
        {}, {"thread": other, "title": "Fremd ✓"},
        {"assignee": "finance", "due_at": at + dt.timedelta(hours=1, microseconds=1)},
        {"due_at": at.replace(microsecond=0), "title": ""},
    ]
    i = 0
    for state in ("pending", "claimed", "cancelled", "superseded", "decided"):
        for payload in PAYLOADS:
            fields = {**extras[i % len(extras)], "payload": payload, "status": state}
            if state == "claimed":
                fields["claimed_by"] = claimer
            if payload.get("kind") == "respond":
                fields["kind"] = "respond"
            review = make_review(**fields)
            # a whole second, microseconds, ties (the keyset goes on by id)
            ReviewRequest.objects.filter(pk=review.pk).update(
                created_at=at.replace(microsecond=0 if i % 2 else at.microsecond)
                + dt.timedelta(seconds=i // 3))
            i += 1
    pages, listed = 0, 0
    for graph in ("", "web_other"):
        f = InboxFilter(graph=graph, status=status)
        query = f"/reviews?status={status}&limit=2" + (f"&graph={graph}" if graph else "")
        cursor = None
        while True:
            got = admin.get(query + (f"&cursor={cursor}" if cursor else ""))
            expected = _old_response(f, cursor, 2)
            assert got.status_code == expected.status_code == 200
            assert got["Content-Type"] == expected["Content-Type"]
            assert got.content == expected.content
            pages += 1
            listed += len(got.json()["items"])
            cursor = got.json()["next"]
            if cursor is None:
                break
    assert listed == sum(review_filtered(None, InboxFilter(graph=graph, status=status)).count()
                         for graph in ("", "web_other")) >= len(PAYLOADS)
