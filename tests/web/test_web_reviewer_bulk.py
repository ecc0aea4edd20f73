"""Bulk decisions from the inbox: a preview per review, then one decision per review, each
checked on its own; a refusal is reported for that review and does not stop the others."""

from __future__ import annotations

from django.urls import reverse

from approvals.models import Decision, ReviewRequest
from orchestration.runtime import runs


def bulk(client, capture, **data):
    with runs.run_inline(), capture(execute=True):
        return client.post(reverse("reviews-bulk"), data)


def test_preview_says_what_will_happen_to_each_review_and_decides_nothing(
        make_review, client_as, django_capture_on_commit_callbacks):
    mine, theirs = make_review(), make_review(assignee="somebody-else")
    response = bulk(client_as("reviewer"), django_capture_on_commit_callbacks,
                    action="approve", reviews=[mine.pk, theirs.pk])
    page = response.content.decode()
    assert response.status_code == 200
    assert "Approve 1 of 2 reviews?" in page
    assert "is assigned to &#x27;somebody-else&#x27;" in page
    assert not Decision.objects.exists()


def test_preview_flags_side_effects_as_a_single_review_does(
        make_user, client_as, django_capture_on_commit_callbacks):
    # QA: the single review page flags the payout ("acts outside: side effects"); the bulk
    # preview did not
    from decimal import Decimal

    from demo.workflows.expense import Expense

    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("expense", Expense(expense_id=9, employee="Bo", vendor="Air",
                                                   amount=Decimal("500")), user=make_user("ops"))
    review = ReviewRequest.objects.get(thread=run.thread)
    page = bulk(client_as("reviewer"), django_capture_on_commit_callbacks,
                action="approve", reviews=[review.pk]).content.decode()
    row = page.split(f"#{review.pk}</span>", 1)[1].split("</tr>", 1)[0]
    assert "<code>payout</code>" in row and "acts outside: side effects" in row
    assert not Decision.objects.exists()


def test_confirm_decides_each_review_on_its_own_and_reports_each(
        start_paused, make_review, client_as, django_capture_on_commit_callbacks):
    a, b = start_paused(), start_paused()
    theirs = make_review(assignee="somebody-else")
    response = bulk(client_as("reviewer"), django_capture_on_commit_callbacks, action="approve",
                    reviews=[a.pk, theirs.pk, b.pk], comment="batch ok", confirm="1")
    page = response.content.decode()
    assert "Approve: 2 of 3 reviews done" in page
    assert f'id="bulk-outcome-{theirs.pk}" class="failed"' in page
    for review in (a, b):
        decision = Decision.objects.get(review=review)
        assert (decision.action, decision.comment) == ("approve", "batch ok")
    theirs.refresh_from_db()
    assert theirs.status == ReviewRequest.Status.PENDING


def test_a_review_decided_meanwhile_is_reported_and_the_rest_go_ahead(
        start_paused, client_as, django_capture_on_commit_callbacks):
    a, b = start_paused(), start_paused()
    other = client_as("reviewer")
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        other.post(reverse("review-decide", args=[a.pk]), {"action": "reject", "comment": "no"})
    response = bulk(client_as("reviewer"), django_capture_on_commit_callbacks, action="approve",
                    reviews=[a.pk, b.pk], confirm="1")
    page = response.content.decode()
    assert "Approve: 1 of 2 reviews done" in page
    assert Decision.objects.get(review=a).action == "reject"
    assert Decision.objects.get(review=b).action == "approve"


def test_bulk_reject_needs_one_comment(make_review, client_as,
                                       django_capture_on_commit_callbacks):
    review = make_review()
    response = bulk(client_as("reviewer"), django_capture_on_commit_callbacks, action="reject",
                    reviews=[review.pk], confirm="1")
    assert response.status_code == 400
    assert "A rejection needs a comment" in response.content.decode()
    assert not Decision.objects.exists()


def test_all_matching_the_filter_takes_the_filtered_list(
        make_review, make_thread, client_as, django_capture_on_commit_callbacks):
    inside = make_review()
    outside = make_review(thread=make_thread(graph_name="web_question"))
    response = bulk(client_as("reviewer"), django_capture_on_commit_callbacks, action="approve",
                    all_matching="1", graph="web_review")
    page = response.content.decode()
    assert f'name="reviews" value="{inside.pk}"' in page
    assert f'value="{outside.pk}"' not in page


def test_a_viewer_cannot_decide_in_bulk(make_review, client_as,
                                        django_capture_on_commit_callbacks):
    review = make_review()
    response = bulk(client_as("viewer"), django_capture_on_commit_callbacks, action="approve",
                    reviews=[review.pk], confirm="1")
    assert response.status_code == 403
    assert not Decision.objects.exists()


def test_nothing_selected_is_a_clear_error(client_as, django_capture_on_commit_callbacks):
    response = bulk(client_as("reviewer"), django_capture_on_commit_callbacks, action="approve")
    assert response.status_code == 400
    assert "Select at least one review" in response.content.decode()


def test_inbox_offers_selection_to_reviewers_only(make_review, client_as):
    review = make_review()
    assert f'id="bulk-{review.pk}"' in client_as("reviewer").get(reverse("inbox")).content.decode()
    assert 'id="bulk-form"' not in client_as("viewer").get(reverse("inbox")).content.decode()
