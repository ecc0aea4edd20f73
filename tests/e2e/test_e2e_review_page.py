"""Faults a browser trial found, in a real browser: a bulk rejection without its comment, a
claim that lost the list and what was typed, a review someone else claimed, Back after a
decision, and the thread page's "Compare with" and selected checkpoint."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from e2e_helpers import wait_for
from test_e2e_review_flows import start_and_wait_for_review

from approvals.models import Decision, ReviewRequest


def count_full_loads(page: Any) -> list[str]:
    """URLs of full page loads from now on (htmx swaps and pushState fire no `load`)."""
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    return loads


def claim_as(review: ReviewRequest, username: str) -> None:
    user = User.objects.create_user(username=username)
    ReviewRequest.objects.filter(pk=review.pk).update(
        status=ReviewRequest.Status.CLAIMED, claimed_by=user, claimed_at=timezone.now())


def test_bulk_reject_without_a_comment_stays_on_the_preview(login, live_url):
    reviews = [start_and_wait_for_review(n) for n in (601, 602)]
    page = login("bulkrita", "reviewer")
    page.goto(f"{live_url}/?graph=expense")
    page.check("input[data-bulk-all]")
    page.select_option("#bulk-form select[name=action]", "reject")
    page.click("#bulk-form button[type=submit]")
    page.wait_for_selector("text=Reject 2 of 2 reviews?")
    preview_url = page.url
    page.click("form.bulk-confirm button.primary")  # the comment left empty
    # the browser says it first: nothing is sent, the preview and its list stay
    assert page.evaluate(
        "() => document.querySelector('form.bulk-confirm textarea[name=comment]')"
        ".validity.valueMissing")
    assert page.url == preview_url
    assert page.locator("form.bulk-confirm input[name=reviews]").count() == 2
    page.fill("form.bulk-confirm textarea[name=comment]", "duplicate claims")
    page.click("form.bulk-confirm button.primary")
    page.wait_for_selector("text=Reject: 2 of 2 reviews done")
    assert Decision.objects.filter(review__in=reviews, comment="duplicate claims").count() == 2


def test_claiming_keeps_the_list_and_what_was_typed(login, live_url):
    review = start_and_wait_for_review(611)
    start_and_wait_for_review(612)
    page = login("claimrita", "reviewer")
    page.goto(f"{live_url}/reviews/{review.pk}/?graph=expense")
    loads = count_full_loads(page)
    page.fill("textarea[name=comment]", "Checked the receipt")
    page.fill("input[name=value__amount]", "990")
    page.keyboard.press("Escape")  # leave the field: shortcuts work again
    page.keyboard.press("c")
    page.wait_for_selector("button:has-text('Release it')")
    page.wait_for_selector("#review-live >> text=claimed by claimrita")
    assert page.url == f"{live_url}/reviews/{review.pk}/?graph=expense"
    assert page.input_value("textarea[name=comment]") == "Checked the receipt"
    assert page.input_value("input[name=value__amount]") == "990"
    assert "in this list" in page.inner_text(".crumbs")
    assert loads == []
    assert ReviewRequest.objects.get(pk=review.pk).claimed_by.username == "claimrita"


def test_a_review_claimed_by_someone_else_offers_no_decision_and_a_lost_race_keeps_the_reason(
        login, live_url):
    claimed, racing = start_and_wait_for_review(621), start_and_wait_for_review(622)
    claim_as(claimed, "ada")
    page = login("otto", "reviewer")
    page.goto(f"{live_url}/reviews/{claimed.pk}/")
    page.wait_for_selector("#review-page h1")
    assert page.locator("form.decide").count() == 0
    assert "Claimed by ada since" in page.inner_text("#claim-box")
    page.wait_for_timeout(400)  # decision keys wait a moment after a page load
    page.keyboard.press("a")  # nothing to press
    page.wait_for_timeout(300)
    assert page.locator("#review-page h1").count() == 1
    assert not Decision.objects.filter(review=claimed).exists()

    # claimed by ada while otto types: the decision is refused, and what he typed is shown
    page.goto(f"{live_url}/reviews/{racing.pk}/")
    page.fill("textarea[name=comment]", "Wrong cost centre, see the receipt")
    claim_as(racing, "ada2")
    page.click("button[value=reject]")
    page.wait_for_selector("text=claimed by ada2")
    assert "Wrong cost centre, see the receipt" in page.inner_text("#sent-values")


def test_back_after_a_decision_shows_the_review_decided(login, live_url):
    first, second = start_and_wait_for_review(631), start_and_wait_for_review(632)
    page = login("backrita", "reviewer")
    page.goto(f"{live_url}/reviews/{first.pk}/")
    page.wait_for_selector("form.decide")
    page.wait_for_timeout(400)  # decision keys wait a moment after a page load
    page.keyboard.press("a")
    page.wait_for_selector(f"#review-page[data-review='{second.pk}']")
    wait_for(lambda: Decision.objects.filter(review=first).exists(), "the decision")
    page.go_back()
    page.wait_for_selector(f"#review-page[data-review='{first.pk}'] #decision-h")
    assert page.inner_text("#review-status") == "Decided"
    assert page.locator("form.decide").count() == 0


def test_thread_page_compare_choices_load_on_the_select_and_the_pick_is_in_the_url(
        login, live_url):
    review = start_and_wait_for_review(641)
    thread_url = f"{live_url}/threads/{review.thread.thread_id}/"
    page = login("treerita", "reviewer")
    page.goto(thread_url)
    page.wait_for_selector("#against")
    assert page.locator("#against option").count() == 1  # "its parent", until asked
    page.click("#against")
    page.wait_for_function("() => document.querySelectorAll('#against option').length > 1")
    page.keyboard.press("Escape")

    first = page.locator("#tree-rows a.cp").first
    picked = first.get_attribute("data-checkpoint")
    assert "selected" not in (page.get_attribute(f"#cp-{picked}", "class") or "")
    first.click()
    page.wait_for_selector(f"#checkpoint-detail >> text={picked[:17]}")
    assert page.url == f"{thread_url}?checkpoint={picked}"
    page.reload()
    page.wait_for_selector(f"#cp-{picked}.selected")
    assert page.input_value("#tree-state input[name=checkpoint]") == picked
    assert page.input_value("#tree-state input[name=follow]") == ""  # a pick: live keeps it
