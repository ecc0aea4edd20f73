"""Faults a browser trial found on the review page and the bulk decision: a rejection without
its comment, a claim that forgot the reviewer's list, a review someone else claimed, and a
review page kept in the browser's history after it was decided."""

from __future__ import annotations

import re

from django.urls import reverse
from django.utils import timezone

from approvals.models import Decision, ReviewRequest
from orchestration.runtime import runs


def bulk(client, capture, **data):
    with runs.run_inline(), capture(execute=True):
        return client.post(reverse("reviews-bulk"), data)


def comment_box(page: str) -> str:
    return re.search(r"<textarea[^>]*name=\"comment\"[^>]*>", page).group(0)


def claimed_by(review: ReviewRequest, user) -> ReviewRequest:
    ReviewRequest.objects.filter(pk=review.pk).update(
        status=ReviewRequest.Status.CLAIMED, claimed_by=user, claimed_at=timezone.now())
    review.refresh_from_db()
    return review


# ---------------------------------------------------------------- bulk reject


def test_bulk_reject_without_a_comment_shows_the_same_preview_with_the_error_at_the_comment(
        make_review, client_as, django_capture_on_commit_callbacks):
    a, b = make_review(), make_review()
    response = bulk(client_as("reviewer"), django_capture_on_commit_callbacks, action="reject",
                    reviews=[a.pk, b.pk], confirm="1", graph="web_review")
    page = response.content.decode()
    assert response.status_code == 400
    assert "Reject 2 of 2 reviews?" in page  # the preview again, not a bare error page
    for review in (a, b):
        assert f'name="reviews" value="{review.pk}"' in page
    assert '<input type="hidden" name="graph" value="web_review">' in page
    field = page.split('<div class="field has-error">', 1)[1].split("</div>", 1)[0]
    assert 'name="comment"' in field and "A rejection needs a comment" in field
    assert "required" in comment_box(page)
    assert not Decision.objects.exists()


def test_bulk_reject_preview_marks_the_comment_required_and_approve_does_not(
        make_review, client_as, django_capture_on_commit_callbacks):
    review = make_review()
    client = client_as("reviewer")
    reject = bulk(client, django_capture_on_commit_callbacks, action="reject",
                  reviews=[review.pk]).content.decode()
    approve = bulk(client, django_capture_on_commit_callbacks, action="approve",
                   reviews=[review.pk]).content.decode()
    assert "required" in comment_box(reject)
    assert "required" not in comment_box(approve)


# ---------------------------------------------------------------- claiming


def test_claiming_from_a_filtered_list_comes_back_to_that_list(make_review, client_as):
    review = make_review()
    client = client_as("reviewer")
    url = reverse("review", args=[review.pk]) + "?graph=web_review"
    page = client.get(url).content.decode()
    claim = page.split(f'action="{reverse("review-claim", args=[review.pk])}', 1)[1]
    claim = claim.split("</form>", 1)[0]
    assert f'name="next" value="/reviews/{review.pk}/?graph=web_review"' in claim
    response = client.post(reverse("review-claim", args=[review.pk]), {"next": url})
    assert response.status_code == 303
    assert response["Location"] == url


def test_claiming_with_htmx_answers_the_claim_part_in_place_not_a_redirect(
        make_review, client_as):
    review = make_review()
    client = client_as("reviewer")
    response = client.post(reverse("review-claim", args=[review.pk]) + "?graph=web_review",
                           HTTP_HX_REQUEST="true", HTTP_HX_TARGET="claim-box")
    page = response.content.decode()
    assert response.status_code == 200
    assert "HX-Redirect" not in response
    assert 'id="claim-box"' in page and "Release it" in page
    # the list the reviewer works through stays in the page's links
    assert f'href="/reviews/{review.pk}/?graph=web_review"' in page or "graph=web_review" in page
    review.refresh_from_db()
    assert review.status == ReviewRequest.Status.CLAIMED


def test_a_review_someone_else_claimed_says_so_and_offers_no_decision(
        make_review, make_user, client_as):
    ada = make_user("reviewer", username="ada")
    review = claimed_by(make_review(), ada)
    page = client_as("reviewer").get(reverse("review", args=[review.pk])).content.decode()
    assert 'class="decide"' not in page
    assert 'data-shortcut="a"' not in page
    notice = page.split('id="claim-box"', 1)[1].split("</div>", 1)[0]
    assert "Claimed by <strong>ada</strong> since" in notice and "<time" in notice


def test_an_admin_may_still_decide_a_review_someone_else_claimed(
        make_review, make_user, client_as):
    review = claimed_by(make_review(), make_user("reviewer", username="ada"))
    page = client_as("admin").get(reverse("review", args=[review.pk])).content.decode()
    assert 'class="decide"' in page
    assert "Claimed by <strong>ada</strong>" in page
    assert reverse("review-unclaim", args=[review.pk]) in page  # they may release it too


def test_the_conflict_page_shows_what_the_reviewer_sent(make_review, make_user, client_as):
    review = claimed_by(make_review(), make_user("reviewer", username="ada"))
    response = client_as("reviewer").post(
        reverse("review-decide-next", args=[review.pk]) + "?graph=web_review",
        {"action": "reject", "comment": "Receipt <missing>", "value__amount": "990"},
        HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 409
    assert "claimed by ada" in page
    assert "Receipt &lt;missing&gt;" in page
    assert "990" in page


# ---------------------------------------------------------------- history


def test_the_review_page_is_never_kept_by_the_browser_or_htmx_history(make_review, client_as):
    review = make_review()
    response = client_as("reviewer").get(reverse("review", args=[review.pk]))
    assert "no-store" in response["Cache-Control"]
    assert 'hx-history="false"' in response.content.decode()
