"""Pages stay readable and bounded: a damaged checkpoint is named where it would show, and a
huge or deeply nested value is shown within a budget with a link to the whole of it."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from approvals.diff import VALUE_BUDGET
from approvals.models import ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Checkpoint


@pytest.fixture
def damaged(start_paused):
    """A paused review whose checkpoint (the thread's head) has a corrupted row."""
    review = start_paused()
    Checkpoint.objects.filter(thread=review.thread, checkpoint_id=review.checkpoint_id).update(
        internal=b"\xc1 not checkpoint data"
    )
    return review


def test_thread_page_names_the_damaged_checkpoint_and_still_shows_the_rest(client_as, damaged):
    response = client_as("viewer").get(reverse("thread", args=[damaged.thread.thread_id]))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Checkpoint <span class=\"mono\">{damaged.checkpoint_id}</span> cannot be read" in page
    assert "fork from its parent" in page
    assert 'id="tree-h"' in page and 'id="history"' in page  # the tree and history render


def test_checkpoint_panel_of_a_damaged_checkpoint_says_what_to_do(client_as, damaged):
    url = reverse("checkpoint", args=[damaged.thread.thread_id, damaged.checkpoint_id])
    response = client_as("viewer").get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "cannot be read" in response.content.decode()


def test_review_page_of_a_damaged_checkpoint_still_offers_the_decision(client_as, damaged):
    response = client_as("reviewer").get(reverse("review", args=[damaged.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"{damaged.checkpoint_id}</span> cannot be read" in page
    assert 'name="action"' in page


def test_fork_page_of_a_damaged_checkpoint_names_it_and_points_to_its_parent(client_as, damaged):
    url = reverse("checkpoint-fork", args=[damaged.thread.thread_id, damaged.checkpoint_id])
    response = client_as("ops").get(url)
    assert response.status_code == 409
    page = response.content.decode()
    parent = Checkpoint.objects.get(
        thread=damaged.thread, checkpoint_id=damaged.checkpoint_id
    ).parent.checkpoint_id
    assert damaged.checkpoint_id in page
    assert reverse("checkpoint-fork", args=[damaged.thread.thread_id, parent]) in page


def test_state_json_of_a_damaged_checkpoint_is_a_409_naming_it(client_as, damaged):
    url = reverse("checkpoint-state", args=[damaged.thread.thread_id, damaged.checkpoint_id])
    response = client_as("viewer").get(url)
    assert response.status_code == 409
    assert damaged.checkpoint_id in response.json()["error"]


# ---------------------------------------------------------------- size budget


def nested(depth: int) -> dict:
    value: dict = {"leaf": "x"}
    for _ in range(depth):
        value = {"a": value, "b": "some text at every level"}
    return value


@pytest.fixture
def forked_with_deep_value(start_paused, make_user, django_capture_on_commit_callbacks):
    """The thread forked (through the runtime, not the form) with a deeply nested title, run
    until it pauses at its review again."""
    review = start_paused()
    deep = nested(350)  # 14 KB of JSON, as in the issue
    assert 13_000 < len(json.dumps(deep)) < 15_000
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        runs.fork_thread(review.thread, review.checkpoint_id, {"title": deep},
                         user=make_user("ops"), reason="deep")
    return ReviewRequest.objects.get(thread=review.thread, status=ReviewRequest.Status.PENDING)


PAGE_LIMIT = 200_000


def test_thread_and_review_pages_stay_small_with_a_deeply_nested_value(
    client_as, forked_with_deep_value
):
    review = forked_with_deep_value
    client = client_as("reviewer")
    thread_page = client.get(reverse("thread", args=[review.thread.thread_id]))
    review_page = client.get(reverse("review", args=[review.pk]))
    assert thread_page.status_code == review_page.status_code == 200
    assert len(thread_page.content) < PAGE_LIMIT, len(thread_page.content)
    assert len(review_page.content) < PAGE_LIMIT, len(review_page.content)


def test_a_value_past_the_budget_is_cut_with_a_link_to_the_whole_of_it(
    client_as, start_paused, make_user, django_capture_on_commit_callbacks
):
    review = start_paused()
    big = [f"item {i}" for i in range(VALUE_BUDGET)]
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        runs.fork_thread(review.thread, review.checkpoint_id, {"notes": big},
                         user=make_user("ops"), reason="big")
    client = client_as("viewer")
    page = client.get(reverse("thread", args=[review.thread.thread_id])).content.decode()
    assert "The whole value as JSON" in page
    head = Checkpoint.objects.filter(thread=review.thread).order_by("-checkpoint_id").first()
    url = reverse("checkpoint-state", args=[review.thread.thread_id, head.checkpoint_id])
    whole = client.get(url, {"field": "notes"}).json()
    assert whole[-len(big):] == big


def test_checkpoint_panel_names_a_damaged_parent_read_with_its_child(client_as, start_paused):
    """The panel reads a checkpoint and its parent together; when that read fails, the two
    are read apart, so the message names the damaged one (here the parent), not its child."""
    review = start_paused()
    head = Checkpoint.objects.get(thread=review.thread, checkpoint_id=review.checkpoint_id)
    assert head.parent is not None
    Checkpoint.objects.filter(pk=head.parent.pk).update(internal=b"\xc1 not checkpoint data")
    url = reverse("checkpoint", args=[review.thread.thread_id, head.checkpoint_id])
    page = client_as("viewer").get(url, HTTP_HX_REQUEST="true").content.decode()
    assert f"{head.parent.checkpoint_id}</span> cannot be read" in page
    assert f"{head.checkpoint_id}</span> cannot be read" not in page
