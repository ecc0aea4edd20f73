"""The queue flow: deciding opens the next open review of the same list in place (htmx), and
deciding is idempotent for a repeated keystroke."""

from __future__ import annotations

import pytest
from django.urls import reverse

from approvals.models import Decision, ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Run

HTMX = {"HTTP_HX_REQUEST": "true"}


def decide_next(client, review, query="", capture=None, **data):
    url = reverse("review-decide-next", args=[review.pk]) + (f"?{query}" if query else "")
    with runs.run_inline(), capture(execute=True):
        return client.post(url, data, **HTMX)


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def test_approving_shows_the_next_open_review_in_place_with_a_notice(start_paused, client_as,
                                                                     capture):
    first, second = start_paused(), start_paused()
    response = decide_next(client_as("reviewer"), first, capture=capture, action="approve")
    assert response.status_code == 200
    assert response["HX-Push-Url"] == reverse("review", args=[second.pk])
    page = response.content.decode()
    assert f'data-review="{second.pk}"' in page
    assert f'href="{reverse("review", args=[first.pk])}">review #{first.pk}' in page
    assert "Approve:" in page
    # QA: the notice ended "Next in your list:" with nothing after it
    notice = page.split('id="queue-notice">', 1)[1].split("</p>", 1)[0]
    assert f"Next in your list, below: review #{second.pk} “{second.title}”." in notice
    first.refresh_from_db()
    assert first.status == ReviewRequest.Status.DECIDED


def test_the_next_review_comes_from_the_same_filtered_list(start_paused, client_as, capture):
    first = start_paused()
    start_paused("web_question")  # older than `third`, but not in the filtered list
    third = start_paused()
    response = decide_next(client_as("reviewer"), first, "graph=web_review", capture,
                           action="approve")
    assert response["HX-Push-Url"] == reverse("review", args=[third.pk]) + "?graph=web_review"


def test_reviews_the_user_may_not_decide_are_skipped(start_paused, make_review, client_as,
                                                     capture):
    first = start_paused()
    make_review(assignee="somebody-else")  # next in the list, but not this user's to decide
    allowed = make_review()
    response = decide_next(client_as("reviewer"), first, capture=capture, action="approve")
    assert response["HX-Push-Url"] == reverse("review", args=[allowed.pk])


def test_after_the_last_open_review_the_inbox_opens(start_paused, client_as, capture):
    only = start_paused()
    response = decide_next(client_as("reviewer"), only, "graph=web_review", capture,
                           action="approve")
    assert response["HX-Redirect"] == reverse("inbox") + "?graph=web_review"


def test_a_repeated_decision_is_recorded_once_and_moves_on_the_same_way(start_paused, client_as,
                                                                        capture):
    first, second = start_paused(), start_paused()
    client = client_as("reviewer")
    one = decide_next(client, first, capture=capture, action="approve")
    two = decide_next(client, first, capture=capture, action="approve")
    assert one.status_code == two.status_code == 200
    assert one["HX-Push-Url"] == two["HX-Push-Url"] == reverse("review", args=[second.pk])
    assert "already recorded" in two.content.decode()
    assert Decision.objects.filter(review=first).count() == 1
    assert Run.objects.filter(thread=first.thread, kind=Run.Kind.RESUME).count() == 1


def test_a_different_decision_on_a_decided_review_is_refused(start_paused, client_as, capture):
    first, _ = start_paused(), start_paused()
    client = client_as("reviewer")
    decide_next(client, first, capture=capture, action="approve")
    response = decide_next(client, first, capture=capture, action="reject", comment="no")
    assert response.status_code == 409
    assert "already decided" in response.content.decode()
    assert Decision.objects.get(review=first).action == "approve"


def test_a_decision_beaten_by_another_reviewer_offers_the_lists_next_open_review(
    start_paused, client_as, capture
):
    first, second = start_paused(), start_paused()
    decide_next(client_as("reviewer"), first, capture=capture, action="approve")
    response = decide_next(client_as("reviewer"), first, "graph=web_review", capture,
                           action="approve")
    assert response.status_code == 409
    page = response.content.decode()
    assert "already decided" in page
    # on `j`, as on the review page, the list carried along
    next_url = reverse("review", args=[second.pk]) + "?graph=web_review"
    assert f'id="queue-next" href="{next_url}"' in page
    assert f'href="{reverse("review", args=[first.pk])}?graph=web_review" id="conflict-review"' \
        in page
    assert Decision.objects.filter(review=first).count() == 1


def test_an_invalid_decision_stays_on_the_review_with_the_error(start_paused, client_as,
                                                                capture):
    review = start_paused()
    response = decide_next(client_as("reviewer"), review, capture=capture, action="reject")
    assert response.status_code == 400
    assert "Say why you reject it" in response.content.decode()
    assert not Decision.objects.filter(review=review).exists()


def test_a_viewer_cannot_decide_through_the_queue(start_paused, client_as, capture):
    review = start_paused()
    response = decide_next(client_as("viewer"), review, capture=capture, action="approve")
    assert response.status_code == 403
    assert not Decision.objects.filter(review=review).exists()


def test_review_page_links_previous_and_next_of_its_list(make_review, client_as):
    a, b, c = make_review(), make_review(), make_review()
    page = client_as("reviewer").get(reverse("review", args=[b.pk])).content.decode()
    assert f'id="queue-prev" href="{reverse("review", args=[a.pk])}"' in page
    assert f'id="queue-next" href="{reverse("review", args=[c.pk])}"' in page
    assert "2 of 3 in this list" in page


def test_inbox_links_carry_the_filter_to_the_review(make_review, client_as):
    review = make_review()
    page = client_as("reviewer").get(reverse("inbox") + "?graph=web_review").content.decode()
    assert f'href="{reverse("review", args=[review.pk])}?graph=web_review"' in page


def test_queue_rows_are_the_orm_lists_rows_for_every_filter(make_user, make_review, make_thread):
    """The queue's fixed statement (selectors.queue_rows) reads what `review_list` orders,
    plus the current review whatever its status, for every filter."""
    from datetime import timedelta

    from django.db.models import Q
    from django.utils import timezone

    from approvals import selectors
    from approvals.models import ReviewRequest

    me = make_user("reviewer", username="quinn")
    now = timezone.now()
    expense = make_thread(graph_name="expense")
    variants = [{}, {"status": "claimed", "claimed_by": me}, {"assignee": "quinn"},
                {"assignee": "reviewer"}, {"due_at": now - timedelta(hours=1)},
                {"status": "decided"}, {"status": "decided", "due_at": now - timedelta(hours=1)},
                {"status": "cancelled"}]
    reviews = [make_review(thread=expense if i % 2 else None, **variants[i % len(variants)])
               for i in range(2 * len(variants))]
    statuses = {"open": Q(status__in=ReviewRequest.OPEN), "decided": Q(status="decided"),
                "any": Q()}
    for current in (reviews[0], reviews[5]):  # open, and decided
        for status, wanted in statuses.items():
            for graph in ("", "expense"):
                for assignee in ("", "mine", "unassigned"):
                    f = selectors.InboxFilter(graph=graph, status=status, assignee=assignee)
                    everything = selectors.review_list(me, selectors.InboxFilter(
                        graph=graph, status="any", assignee=assignee))
                    listed = everything.filter(wanted | Q(pk=current.pk)) if wanted else everything
                    expected = list(listed.values_list("pk", "status", "assignee",
                                                       "claimed_by_id"))
                    assert selectors.queue_rows(me, f, current.pk, 500) == expected, f
                    assert len(selectors.queue_rows(me, f, current.pk, 3)) == min(3, len(expected))
