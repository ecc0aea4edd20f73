"""Every admin list reads its page in a fixed number of queries, however many rows it shows:
a column naming a related object (a run, a user) without `list_select_related` costs a
query per row (the events list made 106 queries for a page of 100)."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import ApiClient
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.api.models import WebhookEndpoint
from approvals.api.tokens import issue_token
from approvals.api.webhooks import EVENT_TYPES
from orchestration.runtime import runs
from orchestration.runtime.models import Checkpoint


def _changelist_queries(client: Client) -> dict[str, int]:
    counts = {}
    for model in admin.site._registry:
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200, url
        counts[url] = len(ctx.captured_queries)
    return counts


def _cycles(n: int, start_paused: Any, make_user: Any, capture: Any) -> None:
    """`n` answered reviews: threads, runs, events, checkpoints, pending writes, decisions,
    webhook deliveries and an API token of each reviewer, all with rows naming others."""
    for _ in range(n):
        review = start_paused()
        reviewer = make_user("reviewer")
        issue_token(reviewer, "cycle")
        with runs.run_inline(), capture(execute=True):
            answer = ApiClient(reviewer).post(f"/reviews/{review.pk}/decision",
                                              {"action": "approve"})
        assert answer.status_code == 200


@pytest.mark.django_db
def test_admin_lists_make_as_many_queries_for_many_rows_as_for_few(
    make_user, start_paused, django_capture_on_commit_callbacks
):
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s",
                                   event_types=list(EVENT_TYPES))
    client = Client()
    client.force_login(make_user("admin", is_superuser=True, is_staff=True))
    _cycles(2, start_paused, make_user, django_capture_on_commit_callbacks)
    few = _changelist_queries(client)
    _cycles(3, start_paused, make_user, django_capture_on_commit_callbacks)
    many = _changelist_queries(client)
    assert {url: (few[url], n) for url, n in many.items() if n != few[url]} == {}


@pytest.mark.django_db
def test_big_table_lists_filter_without_reading_the_whole_table(
    make_user, start_paused, django_capture_on_commit_callbacks
):
    """The checkpoint and event lists offered their filters' values from a DISTINCT over
    every row ever written, and counted the table again beside every filtered count (a
    million of each: 250-290 ms a page, 12-40 ms after). The filters still filter."""
    _cycles(2, start_paused, make_user, django_capture_on_commit_callbacks)
    client = Client()
    client.force_login(make_user("admin", is_superuser=True, is_staff=True))
    checkpoints = reverse("admin:orchestration_checkpoint_changelist")
    events = reverse("admin:orchestration_event_changelist")
    with CaptureQueriesContext(connection) as seen:
        page = client.get(checkpoints, {"source": "loop"})
        listed = client.get(events, {"kind": "review_decided"})
    sql = [q["sql"] for q in seen.captured_queries]
    assert not [s for s in sql if "DISTINCT" in s and "orchestration_checkpoint" in s]
    distinct_events = [s for s in sql if "DISTINCT" in s and "orchestration_event" in s]
    assert distinct_events and all('"id" >=' in s for s in distinct_events), distinct_events
    counts = [s for s in sql if s.startswith("SELECT COUNT(*)")]
    assert counts and all("WHERE" in s for s in counts), counts  # no count of every row
    text = page.content.decode()
    assert 'href="?source=fork"' in text  # every source is offered
    assert page.context["cl"].result_count == Checkpoint.objects.filter(source="loop").count()
    assert listed.context["cl"].result_count == 2
    assert 'href="?kind=review_requested"' in listed.content.decode()
