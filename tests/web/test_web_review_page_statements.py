"""The review page's first statement (approvals.access.access_review_page): the review with
its relations, whether its checkpoint still exists and, decided, its decision with the
decision's author, in one round trip; and the statements each page of a reviewer's cycle
runs, pinned so that a regression fails here."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals import review_changes
from approvals.access import access_review, access_review_page
from approvals.models import Decision, ReviewRequest
from approvals.selectors import review_decision
from orchestration.savers import DjangoCheckpointSaver


@pytest.fixture(autouse=True)
def _nothing_kept():
    review_changes.forget_all()
    yield
    review_changes.forget_all()


def fields(obj):
    return [getattr(obj, f.attname) for f in obj._meta.concrete_fields]


# The tests' sessions and users are read from the database on every request (the served
# settings keep them elsewhere: bench.pages_cpu); those statements are not the page's.
SIGNED_IN = ('"django_session"', '"password", "last_login"', "SELECT 'u', c.app_label")


def statements(client, path: str) -> list[str]:
    """The page's statements on a GET of `path` after a first one (permissions and the kept
    sections warm, as on a reviewer's second look), which must succeed."""
    assert client.get(path).status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return [q["sql"] for q in ctx.captured_queries
            if not any(marker in q["sql"] for marker in SIGNED_IN)]


def test_the_page_read_is_what_access_review_and_the_selectors_read(start_paused, make_user):
    review = start_paused()
    viewer = make_user("viewer")
    page = access_review_page(viewer, review.pk)
    assert fields(page.review) == fields(access_review(viewer, review.pk, for_update=False))
    assert fields(page.review.thread) == fields(review.thread)
    assert page.checkpoint_exists and page.decision is None and not page.reanswered

    decider = make_user("reviewer")
    ReviewRequest.objects.filter(pk=review.pk).update(status=ReviewRequest.Status.DECIDED)
    Decision.objects.create(review=review, decided_by=decider, action="approve", comment="ok",
                            values={"amount": 3})
    page = access_review_page(viewer, review.pk)
    assert fields(page.decision) == fields(review_decision(review.pk))
    assert fields(page.decision.decided_by) == fields(decider)
    assert not page.reanswered
    ReviewRequest.objects.create(thread=review.thread, interrupt_id="again", node=review.node,
                                 checkpoint_id=review.checkpoint_id, reanswer_of=review)
    assert access_review_page(viewer, review.pk).reanswered


def test_a_decision_without_its_author_and_an_open_reviews_stray_decision(start_paused,
                                                                          make_user):
    """A decision whose author column is empty reads as no author; a decision row on a
    review not (or no longer) decided is not shown, as the page never read it."""
    review = start_paused()
    viewer = make_user("viewer")
    Decision.objects.create(review=review, decided_by=None, action="approve")
    assert access_review_page(viewer, review.pk).decision is None  # still pending
    ReviewRequest.objects.filter(pk=review.pk).update(status=ReviewRequest.Status.DECIDED)
    page = access_review_page(viewer, review.pk)
    assert page.decision is not None and page.decision.decided_by is None


def test_no_review_is_a_404_and_a_viewer_without_the_role_is_refused(client_as, make_user):
    assert client_as("viewer").get(reverse("review", args=[987654])).status_code == 404
    assert client_as(None).get(reverse("review", args=[987654])).status_code == 403


def test_a_pruned_checkpoint_reads_as_gone_and_the_page_shows_no_kept_changes(start_paused,
                                                                             client_as,
                                                                             make_user):
    review = start_paused()
    client = client_as("reviewer")
    path = reverse("review", args=[review.pk])
    assert "No field changed." not in client.get(path).content.decode()  # read and kept
    DjangoCheckpointSaver().delete_thread(review.thread.thread_id)
    assert not access_review_page(make_user("viewer"), review.pk).checkpoint_exists
    assert "No field changed." in client.get(path).content.decode()


def test_a_renamed_decider_shows_by_their_new_name(start_paused, client_as, make_user):
    review = start_paused()
    decider = make_user("reviewer")
    client = client_as(user=decider)
    assert client.post(reverse("review-decide", args=[review.pk]),
                       {"action": "approve", "comment": ""}).status_code in (302, 303)
    path = reverse("review", args=[review.pk])
    assert f"<dd>{decider.username}</dd>" in client.get(path).content.decode()
    decider.username = "renamed-decider"
    decider.save(update_fields=["username"])
    assert "<dd>renamed-decider</dd>" in client.get(path).content.decode()


def test_statements_per_page_of_a_reviewers_cycle(start_paused, client_as, make_user):
    """Open review: the review (with its checkpoint probe), the history, the queue. Decided:
    the same three, the decision read with the review; one more when a review re-answers it.
    Inbox: the list and the counts."""
    review = start_paused()
    decider = make_user("reviewer")
    client = client_as(user=decider)
    path = reverse("review", args=[review.pk])
    assert len(statements(client, path)) == 3
    assert client.post(reverse("review-decide", args=[review.pk]),
                       {"action": "approve", "comment": ""}).status_code in (302, 303)
    assert len(statements(client, path)) == 3
    ReviewRequest.objects.create(thread=review.thread, interrupt_id="again", node=review.node,
                                 checkpoint_id=review.checkpoint_id, reanswer_of=review)
    assert len(statements(client, path)) == 4
    assert len(statements(client, reverse("inbox"))) == 2


def test_the_queue_links_of_a_review_page(start_paused, client_as):
    """The review page's previous/next links and place in the list, as the inbox orders it."""
    reviews = [start_paused() for _ in range(3)]
    client = client_as("reviewer")
    page = client.get(reverse("review", args=[reviews[1].pk])).content.decode()
    assert f'id="queue-prev" href="/reviews/{reviews[0].pk}/"' in page
    assert f'id="queue-next" href="/reviews/{reviews[2].pk}/"' in page
    assert "(2 of 3 in this list)" in page
