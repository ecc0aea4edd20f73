"""Faults a browser trial found in the reviewer's keyboard flow and the inbox, in a real browser:
edits approved as the original, Ctrl+Enter in the comment doing nothing, focus after an invalid
value, the inbox cursor and counts lost on live updates."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from e2e_helpers import wait_decided, wait_for
from test_e2e_review_flows import start_and_wait_for_review

from approvals.models import Decision, ReviewRequest
from orchestration.runtime import runs

# longer than the guard after a decision request: a decision sent would be recorded by then
NOTHING_SENT_MS = 800


def open_review(page: Any, live_url: str, review: ReviewRequest) -> None:
    page.goto(f"{live_url}/reviews/{review.pk}/")
    page.wait_for_selector(f"#review-page[data-review='{review.pk}']")


def type_amount(page: Any, amount: str) -> None:
    """`e`, then replace the amount by typing (the cursor is in the field)."""
    page.keyboard.press("e")
    assert page.evaluate("() => document.activeElement.name") == "value__amount"
    page.keyboard.press("Control+a")
    page.keyboard.type(amount)


def active(page: Any, attribute: str) -> str | None:
    return page.evaluate("a => document.activeElement.getAttribute(a)", attribute)


def wait_for_decision(review: ReviewRequest, timeout: float = 10.0) -> Decision:
    deadline = time.monotonic() + timeout
    while True:
        found = Decision.objects.filter(review=review).first()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"review {review.pk} was not decided"
        time.sleep(0.05)


def undecided(review: ReviewRequest) -> bool:
    return not Decision.objects.filter(review=review).exists()


def test_enter_in_an_edited_amount_saves_the_edit_not_the_original(login, live_url):
    review = start_and_wait_for_review(601)
    page = login("erin", "reviewer")
    open_review(page, live_url, review)
    type_amount(page, "990")
    page.keyboard.press("Enter")
    wait_decided(page, review.pk)
    decision = Decision.objects.get(review=review)
    assert decision.action == "edit"
    assert Decimal(str(decision.values["amount"])) == Decimal("990")


def test_plain_enter_in_an_unchanged_field_decides_nothing(login, live_url):
    review = start_and_wait_for_review(602)
    page = login("enzo", "reviewer")
    open_review(page, live_url, review)
    page.keyboard.press("e")
    page.keyboard.press("Enter")
    page.wait_for_timeout(NOTHING_SENT_MS)
    assert undecided(review)
    assert "Nothing changed" in page.inner_text("form.decide .pending-hint")


def test_a_after_an_edit_does_not_approve_the_original_and_says_what_to_do(login, live_url):
    first, second = start_and_wait_for_review(603), start_and_wait_for_review(604)
    page = login("abel", "reviewer")
    open_review(page, live_url, first)
    type_amount(page, "880")
    page.keyboard.press("Escape")  # leaves the field: shortcuts work again
    page.keyboard.press("a")
    hint = page.locator("form.decide .pending-hint")
    hint.wait_for(state="visible")
    assert "You changed Amount (EUR)" in hint.inner_text()
    assert "Ctrl+Enter" in hint.inner_text() and "Esc" in hint.inner_text()
    page.wait_for_timeout(NOTHING_SENT_MS)
    assert undecided(first)
    # Ctrl+Enter, as the message says: the edit is what gets approved
    page.keyboard.press("Control+Enter")
    wait_decided(page, first.pk)
    decision = Decision.objects.get(review=first)
    assert (decision.action, Decimal(str(decision.values["amount"]))) == ("edit", Decimal("880"))

    # on the next review: Esc undoes the change, then `a` approves the values as asked
    page.wait_for_selector(f"#review-page[data-review='{second.pk}']")
    page.wait_for_timeout(400)  # past the guard that follows every decision request
    type_amount(page, "770")
    page.keyboard.press("Escape")
    page.wait_for_selector("button[data-undo-edits]:visible")
    page.keyboard.press("Escape")
    assert page.input_value("input[name=value__amount]") == "1250.00"
    assert page.locator("button[data-undo-edits]").is_hidden()
    page.keyboard.press("a")
    # not wait_decided: the notice of the first decision on this page may name this review
    # too ("next: review #…"), and a CI run read the database before the decision was in
    decided = wait_for_decision(second)
    assert decided.action == "approve"


def test_the_undo_button_puts_the_original_values_back(login, live_url):
    review = start_and_wait_for_review(605)
    page = login("una", "reviewer")
    open_review(page, live_url, review)
    page.fill("input[name=value__amount]", "12")
    page.click("button[data-undo-edits]")
    assert page.input_value("input[name=value__amount]") == "1250.00"
    page.click("button[value=approve]")
    wait_decided(page, review.pk)
    assert Decision.objects.get(review=review).action == "approve"


def test_enter_in_an_edited_agent_argument_sends_the_edit(login, live_url):
    from demo.workflows.email_agent import EmailTask

    run = runs.start_thread("email_agent", EmailTask(sender="Mia Wong", sender_email="m@ex.com",
                                                     subject="Kickoff", message="Meet?"),
                            user=None, title="Reply to Mia")
    review = wait_for(lambda: ReviewRequest.objects.filter(thread=run.thread, status="pending")
                      .first(), "the agent to ask")
    page = login("agnes", "reviewer")
    open_review(page, live_url, review)
    page.keyboard.press("e")
    name = active(page, "name")
    assert name and name.startswith("r0-arg-")
    page.keyboard.press("Control+a")
    page.keyboard.type("Re: Kickoff on Monday")
    page.keyboard.press("Enter")
    wait_for(lambda: Decision.objects.filter(review=review).exists(), "the answer")
    answer = Decision.objects.get(review=review).answer("x")[0]
    assert answer["type"] == "edit"
    assert "Re: Kickoff on Monday" in answer["args"]["args"].values()


def test_ctrl_enter_in_the_comment_rejects_without_pressing_r_first(login, live_url):
    review = start_and_wait_for_review(606)
    page = login("cora", "reviewer")
    open_review(page, live_url, review)
    page.click("textarea[name=comment]")
    hint = page.locator("form.decide .pending-hint")
    hint.wait_for(state="visible")
    assert "reject" in hint.inner_text()
    page.keyboard.type("duplicate of #605")
    page.keyboard.press("Control+Enter")
    wait_decided(page, review.pk)
    decision = Decision.objects.get(review=review)
    assert (decision.action, decision.comment) == ("reject", "duplicate of #605")


def test_an_invalid_value_brings_the_focus_to_the_field_with_its_error(login, live_url):
    review = start_and_wait_for_review(607)
    page = login("ivo", "reviewer")
    open_review(page, live_url, review)
    type_amount(page, "990.005")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".has-error input[name=value__amount]")
    page.wait_for_function("() => document.activeElement.name === 'value__amount'")
    assert active(page, "aria-invalid") == "true"
    described = (active(page, "aria-describedby") or "").split()
    assert "id_value__amount_error" in described
    assert "decimal places" in page.inner_text("#id_value__amount_error")
    assert undecided(review)


# ---------------------------------------------------------------- the inbox


def live_update(page: Any) -> None:
    """What a websocket push does to the inbox: its list asks again and is swapped."""
    page.evaluate("""() => new Promise(done => {
        document.body.addEventListener("htmx:afterSettle", () => done(), {once: true});
        htmx.trigger(document.body, "htmx:wsAfterMessage");
    })""")


def current_review(page: Any) -> int | None:
    return page.evaluate("""() => {
        const row = document.querySelector("#inbox-list tbody tr.current");
        const box = row && row.querySelector("input[data-bulk-row]");
        return box ? Number(box.value) : null;
    }""")


def focused_review(page: Any) -> int | None:
    return page.evaluate("""() => {
        const row = document.activeElement.closest("#inbox-list tbody tr");
        const box = row && row.querySelector("input[data-bulk-row]");
        return box ? Number(box.value) : null;
    }""")


def test_the_inbox_cursor_stays_on_its_review_across_live_updates(login, live_url):
    reviews = [start_and_wait_for_review(n) for n in (611, 612, 613)]
    page = login("jody", "reviewer")
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert current_review(page) == reviews[1].pk
    live_update(page)
    assert current_review(page) == focused_review(page) == reviews[1].pk
    page.keyboard.press("j")
    assert current_review(page) == reviews[2].pk

    # the review under the cursor leaves the list: the cursor takes the row now in its place
    page.keyboard.press("k")
    ReviewRequest.objects.filter(pk=reviews[1].pk).update(status="cancelled")
    live_update(page)
    assert current_review(page) == focused_review(page) == reviews[2].pk


def option_text(page: Any, value: str) -> str:
    return page.inner_text(f"select[name=status] option[value='{value}']")


def badge_count(page: Any, status: str) -> str:
    return page.inner_text(f"ul.counts li:has(.status-{status})").split()[-1]


def test_inbox_counts_follow_the_filter_and_live_updates(login, live_url):
    from demo.workflows.email_agent import EmailTask

    expenses = [start_and_wait_for_review(n) for n in (621, 622)]
    run = runs.start_thread("email_agent", EmailTask(sender="Li", sender_email="li@ex.com",
                                                     subject="Hi", message="Hello"),
                            user=None, title="Reply to Li")
    wait_for(lambda: ReviewRequest.objects.filter(thread=run.thread, status="pending").exists(),
             "the agent to ask")
    page = login("cass", "reviewer")
    assert option_text(page, "open") == "Open (3)"

    page.select_option("select[name=graph]", "expense")
    page.wait_for_function("() => document.querySelectorAll('#inbox-list tbody tr').length === 2")
    page.wait_for_function(
        "() => document.querySelector('select[name=status] option[value=open]')"
        ".textContent.trim() === 'Open (2)'")
    assert badge_count(page, "pending") == "2"
    assert page.input_value("select[name=graph]") == "expense"

    ReviewRequest.objects.filter(pk=expenses[0].pk).update(status="cancelled")
    live_update(page)
    assert option_text(page, "open") == "Open (1)"
    assert (badge_count(page, "pending"), badge_count(page, "cancelled")) == ("1", "1")
    assert page.locator("#inbox-list tbody tr").count() == 1
