"""The reviewer's queue in a real browser: keyboard only, in place, no double decisions; bulk
decisions; axe-core on every page; the inbox and review page at 390 px wide."""

from __future__ import annotations

from typing import Any

from axe import assert_accessible
from e2e_helpers import screenshot, wait_for
from test_e2e_review_flows import start_and_wait_for_review

from approvals.models import Decision, ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Run

NARROW = {"width": 390, "height": 844}


def count_full_loads(page: Any) -> list[str]:
    """URLs of full page loads from now on (htmx swaps and pushState fire no `load`)."""
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    return loads


def shown_review(page: Any) -> int:
    return int(page.get_attribute("#review-page", "data-review"))


def test_keyboard_only_queue_flow_decides_in_place_and_never_twice(login, live_url):
    reviews = [start_and_wait_for_review(n) for n in (501, 502, 503, 504)]
    page = login("kira", "reviewer")
    loads = count_full_loads(page)
    page.keyboard.press("j")
    page.keyboard.press("Enter")  # opens the review in place too
    page.wait_for_selector(f"#review-page[data-review='{reviews[0].pk}']")
    assert page.url == f"{live_url}/reviews/{reviews[0].pk}/"

    page.keyboard.press("a")  # one keystroke: approved, and the next review is shown
    page.wait_for_selector(f"#review-page[data-review='{reviews[1].pk}']")
    assert page.url == f"{live_url}/reviews/{reviews[1].pk}/"
    assert f"review #{reviews[0].pk}" in page.inner_text("#queue-notice")
    assert_accessible(page, "the review swapped in after a decision")

    # a double keystroke decides once: the second `a` lands while the first is on its way
    page.wait_for_timeout(400)  # past the guard that follows every decision request
    page.keyboard.press("a")
    page.keyboard.press("a")
    page.wait_for_selector(f"#review-page[data-review='{reviews[2].pk}']")
    page.wait_for_timeout(800)
    assert ReviewRequest.objects.get(pk=reviews[2].pk).status == "pending"
    assert Decision.objects.filter(review__in=reviews[:2]).count() == 2

    # a rejection without a reason comes back in place with the error on the field
    page.keyboard.press("r")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".has-error >> text=Say why you reject it")
    assert shown_review(page) == reviews[2].pk
    page.wait_for_timeout(400)  # past the guard that follows every decision request

    # r puts the cursor in the reason; typing there fires no shortcut; Ctrl+Enter rejects
    page.keyboard.press("r")
    assert page.evaluate("() => document.activeElement.name") == "comment"
    page.keyboard.type("jak: wrong receipt")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(f"#review-page[data-review='{reviews[3].pk}']")
    decision = Decision.objects.get(review=reviews[2])
    assert (decision.action, decision.comment) == ("reject", "jak: wrong receipt")
    assert loads == [], "deciding must not load a full page"

    # history is kept: Back shows the review decided before
    page.go_back()
    page.wait_for_url(f"{live_url}/reviews/{reviews[2].pk}/")
    # Back loads the review page afresh (no htmx history snapshot): wait for it to arrive
    page.wait_for_selector(f"#review-page[data-review='{reviews[2].pk}'] #decision-h")

    # ? opens the help overlay, Escape closes it
    page.keyboard.press("?")
    page.wait_for_selector("#kbd-help[open]")
    assert_accessible(page, "the keyboard help overlay")
    page.keyboard.press("Escape")
    page.wait_for_selector("#kbd-help:not([open])", state="attached")


def test_bulk_approve_with_a_shift_click_range(login, live_url):
    reviews = [start_and_wait_for_review(n) for n in (511, 512, 513)]
    page = login("bea", "reviewer")
    page.click(f"#bulk-{reviews[0].pk}")
    page.click(f"#bulk-{reviews[2].pk}", modifiers=["Shift"])
    assert page.is_checked(f"#bulk-{reviews[1].pk}")
    assert page.inner_text("#bulk-count") == "3 selected"
    page.click("#bulk-form button[type=submit]")
    page.wait_for_selector("text=Approve 3 of 3 reviews?")
    assert_accessible(page, "the bulk preview")
    page.fill("textarea[name=comment]", "all within budget")
    page.click("button.primary")
    page.wait_for_selector("text=Approve: 3 of 3 reviews done")
    assert_accessible(page, "the bulk results")
    assert Decision.objects.filter(review__in=reviews, comment="all within budget").count() == 3


def test_agent_inbox_review_accepts_with_one_keystroke(login, live_url):
    from demo.workflows.email_agent import EmailTask

    run = runs.start_thread("email_agent", EmailTask(sender="Mia Wong", sender_email="m@ex.com",
                                                     subject="Kickoff", message="Meet?"),
                            user=None, title="Reply to Mia")
    review = wait_for(lambda: ReviewRequest.objects.filter(thread=run.thread, status="pending")
                      .first(), "the agent to ask")
    page = login("ana", "reviewer")
    page.goto(f"{live_url}/reviews/{review.pk}/")
    assert page.locator("form.agent-answer button[name=r0-type]").count() == 4
    assert_accessible(page, "an Agent Inbox review")
    page.keyboard.press("a")
    wait_for(lambda: Run.objects.filter(thread=run.thread, status="succeeded").exists(),
             "the agent to send the email")
    assert Decision.objects.get(review=review).answer("x")[0]["type"] == "accept"


def test_every_page_passes_axe_and_inbox_and_review_work_at_390px(login, live_url):
    review = start_and_wait_for_review(521)
    start_and_wait_for_review(522)
    page = login("ada2", "admin")
    thread = review.thread
    run = Run.objects.filter(thread=thread).first()
    pages = ["/", f"/reviews/{review.pk}/", "/threads/", f"/threads/{thread.thread_id}/",
             f"/threads/{thread.thread_id}/checkpoints/{review.checkpoint_id}/fork/",
             "/ops/", f"/ops/runs/{run.pk}/", "/runs/new/", "/runs/new/expense/",
             "/account/api-tokens/", "/account/notifications/"]
    for path in pages:
        response = page.goto(f"{live_url}{path}")
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        assert_accessible(page, path)
    page.context.clear_cookies()
    page.goto(f"{live_url}/accounts/login/")
    assert_accessible(page, "the login page")

    narrow = login("nora", "reviewer")
    narrow.set_viewport_size(NARROW)
    narrow.goto(f"{live_url}/")
    assert narrow.evaluate("() => document.documentElement.scrollWidth") <= NARROW["width"]
    assert_accessible(narrow, "the inbox at 390 px")
    screenshot(narrow, "mobile-inbox")
    narrow.goto(f"{live_url}/reviews/{review.pk}/")
    assert narrow.evaluate("() => document.documentElement.scrollWidth") <= NARROW["width"]
    assert_accessible(narrow, "a review at 390 px")
    screenshot(narrow, "mobile-review")
    narrow.click("button[value=approve]")
    narrow.wait_for_selector("#queue-notice")
    assert narrow.evaluate("() => document.documentElement.scrollWidth") <= NARROW["width"]
