"""The review page's "What changed before this review": the diff of the checkpoint the review
was asked at against its parent, rendered once per process and kept (approvals.review_changes).
Kept or not, the page shows what the two checkpoints say, and what a fresh read would."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.urls import reverse

from approvals import review_changes
from approvals.diff import diff_states
from approvals.models import ReviewRequest
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.models import Checkpoint
from orchestration.savers import DjangoCheckpointSaver


@pytest.fixture(autouse=True)
def _nothing_kept():
    review_changes.forget_all()
    yield
    review_changes.forget_all()


def section(client, review) -> str:
    page = client.get(reverse("review", args=[review.pk])).content.decode()
    start = page.index('id="diff-h"')
    return page[start:page.index("</section>", start)]


def shown_rows(text: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="change-(\w+)">\s*<th scope="row"><code>(\w+)</code>', text)


def expected_rows(review) -> list[tuple[str, str]]:
    """What changed, read afresh through the saver: the asked checkpoint against its parent."""
    saver = DjangoCheckpointSaver()
    asked = saver.get_tuple(CheckpointConfig(review.thread.thread_id, review.checkpoint_id))
    parent = (saver.get_tuple(asked.parent_config) if asked.parent_config else None)
    old = dict(parent.checkpoint.values) if parent else {}
    return [(c.kind, c.field) for c in diff_states(old, asked.checkpoint.values) if c.is_change]


def test_review_page_shows_the_diff_of_its_checkpoint_against_its_parent(start_paused,
                                                                          client_as):
    review = start_paused()
    client = client_as("reviewer")
    first = section(client, review)
    assert shown_rows(first) == expected_rows(review) != []
    assert section(client, review) == first  # the kept section: the same text
    review_changes.forget_all()
    assert section(client, review) == first  # and the same as read afresh


def test_a_forked_branchs_review_shows_the_diff_against_its_own_parent(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    review = start_paused()
    thread = review.thread
    client = client_as("reviewer")
    section(client, review)  # the original branch's review, kept
    first = DjangoCheckpointSaver().list(CheckpointConfig(thread.thread_id))[0]
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = client_as("ops").post(
            reverse("checkpoint-fork", args=[thread.thread_id, first.checkpoint.id]),
            {"field__title": "Forked title", "field__amount": "99.5",
             "field__notes": "[]", "field__outcome": "", "field__reviewer": "",
             "field__tags": "{}", "reason": "try another title"},
        )
    assert response.status_code == 303
    forked = ReviewRequest.objects.get(thread=thread, status=ReviewRequest.Status.PENDING)
    assert forked.checkpoint_id != review.checkpoint_id
    text = section(client, forked)
    assert shown_rows(text) == expected_rows(forked) != []
    # the original branch's review still shows its own checkpoint's changes
    assert shown_rows(section(client, review)) == expected_rows(review)


def test_review_asked_at_a_first_checkpoint_shows_every_field_added(start_paused, client_as):
    review = start_paused()
    root = Checkpoint.objects.get(thread=review.thread, parent=None, checkpoint_ns="")
    ReviewRequest.objects.filter(pk=review.pk).update(checkpoint_id=root.checkpoint_id)
    review.refresh_from_db()
    client = client_as("reviewer")
    text = section(client, review)
    rows = shown_rows(text)
    assert rows == expected_rows(review) and rows
    assert {kind for kind, _ in rows} == {"added"}
    assert section(client, review) == text


def test_a_damaged_checkpoint_is_named_on_every_view_and_its_repair_shows(start_paused,
                                                                          client_as):
    review = start_paused()
    row = Checkpoint.objects.filter(thread=review.thread, checkpoint_id=review.checkpoint_id)
    internal = bytes(row.get().internal)
    row.update(internal=b"\xc1 not checkpoint data")
    client = client_as("reviewer")
    for _ in range(2):  # never kept
        assert f"{review.checkpoint_id}</span> cannot be read" in section(client, review)
    row.update(internal=internal)  # restored from a backup
    text = section(client, review)
    assert "cannot be read" not in text
    assert shown_rows(text) == expected_rows(review) != []


def test_a_pruned_threads_review_no_longer_shows_the_kept_changes(start_paused, client_as):
    review = start_paused()
    client = client_as("reviewer")
    assert shown_rows(section(client, review))  # read and kept
    DjangoCheckpointSaver().delete_thread(review.thread.thread_id)  # what prune_threads does
    text = section(client, review)
    assert shown_rows(text) == []
    assert "No field changed." in unescape(text)


def test_kept_sections_are_bounded_oldest_first(monkeypatch):
    kept = review_changes._Kept()
    monkeypatch.setattr(review_changes, "MAX_ENTRIES", 2)
    for n in range(3):
        kept.put((n, "t", "c", "/"), review_changes.Markup(f"section {n}"))
    assert kept.get((0, "t", "c", "/")) is None
    assert kept.get((1, "t", "c", "/")) == "section 1"
    assert kept.get((2, "t", "c", "/")) == "section 2"
    monkeypatch.setattr(review_changes, "MAX_ENTRY_CHARS", 5)
    kept.put((3, "t", "c", "/"), review_changes.Markup("too long to keep"))
    assert kept.get((3, "t", "c", "/")) is None
