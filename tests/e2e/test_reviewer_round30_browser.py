"""Faults the round-30 reviewer trial found in headless Chromium: a typed response dropped by
Approve, live updates leaving a decision form on a decided review, pages wider than a phone,
a stale bulk count, Next leading to a decided review, a stale Ctrl+Enter hint, focus after a
refused fork."""

from __future__ import annotations

from typing import Any

from e2e_helpers import wait_decided, wait_for
from test_e2e_keyboard_flow import NOTHING_SENT_MS, active, open_review, undecided
from test_e2e_langgraph_style import ARTICLE, pending_review
from test_e2e_review_flows import start_and_wait_for_review

from approvals.actions import DecisionInput, do_decide, do_run_action
from approvals.models import Decision, ReviewRequest
from orchestration.runtime import runs


def hint(page: Any) -> str:
    return page.inner_text("#review-page .pending-hint")


def start_publishing(title: str) -> ReviewRequest:
    run = runs.start_thread("publishing", dict(ARTICLE), user=None, title=title)
    return pending_review(run.thread)


# ---- A: a typed response is never dropped by Approve / Accept

def test_a_after_typing_a_response_is_refused_until_it_is_sent_or_cleared(login, live_url):
    review = start_publishing("Stand-up tips (a)")
    page = login("rhea", "reviewer")
    open_review(page, live_url, review)
    page.fill("textarea[name=text]", "Fix the typo first")
    page.keyboard.press("Escape")  # leaves the field: shortcuts work again
    page.keyboard.press("a")
    page.wait_for_timeout(NOTHING_SENT_MS)
    assert undecided(review)
    assert "You wrote a response, but Approve does not send it" in hint(page)
    # the Approve button is refused the same way
    page.click("button[value=approve]")
    page.wait_for_timeout(NOTHING_SENT_MS)
    assert undecided(review)
    assert page.input_value("textarea[name=text]") == "Fix the typo first"
    # Esc clears it (the offered undo); then `a` approves without it
    page.keyboard.press("Escape")
    assert page.input_value("textarea[name=text]") == ""
    page.keyboard.press("a")
    wait_decided(page, review.pk)
    decision = Decision.objects.get(review=review)
    assert (decision.action, decision.text) == ("approve", "")


def test_ctrl_enter_after_a_refused_a_sends_the_response(login, live_url):
    review = start_publishing("Stand-up tips (ctrl)")
    page = login("ruth", "reviewer")
    open_review(page, live_url, review)
    page.fill("textarea[name=text]", "Shorter title please")
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    page.wait_for_selector("#review-page .pending-hint >> text=Ctrl+Enter")
    page.keyboard.press("Control+Enter")
    wait_decided(page, review.pk)
    decision = Decision.objects.get(review=review)
    assert (decision.action, decision.text) == ("respond", "Shorter title please")


def test_accept_after_typing_an_agent_response_is_refused(login, live_url):
    from demo.workflows.email_agent import EmailTask

    run = runs.start_thread("email_agent", EmailTask(sender="Mia Wong", sender_email="m@ex.com",
                                                     subject="Kickoff", message="Meet?"),
                            user=None, title="Reply to Mia (round 30)")
    review = wait_for(lambda: ReviewRequest.objects.filter(thread=run.thread, status="pending")
                      .first(), "the agent to ask")
    page = login("arlo", "reviewer")
    open_review(page, live_url, review)
    page.fill("[data-response-field]", "Say Tuesday instead")
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    page.wait_for_timeout(NOTHING_SENT_MS)
    assert undecided(review)
    assert "Accept does not send it" in hint(page)
    page.click("button[data-clear-response]")
    assert page.input_value("[data-response-field]") == ""
    page.keyboard.press("a")
    wait_decided(page, review.pk)
    assert Decision.objects.get(review=review).answer("x")[0]["type"] == "accept"


def test_a_with_an_empty_response_box_still_approves(login, live_url):
    review = start_publishing("Stand-up tips (plain a)")
    page = login("rosa", "reviewer")
    open_review(page, live_url, review)
    page.keyboard.press("a")
    wait_decided(page, review.pk)
    assert Decision.objects.get(review=review).action == "approve"


# ---- B: a review closed elsewhere loses its decision form and claim box, live

def test_a_review_decided_elsewhere_replaces_the_form_live(login, live_url):
    review = start_and_wait_for_review(3001)
    rita = login("rita", "reviewer")
    open_review(rita, live_url, review)
    rita.click("[data-shortcut='c']")  # claimed by rita: her page shows "Release it"
    rita.wait_for_selector("#claim-box >> text=Claimed by you")
    rita.fill("textarea[name=comment]", "checking the fare")
    ada = login("ada", "admin")  # may decide a review rita claimed
    open_review(ada, live_url, review)
    ada.click("button[value=approve]")
    wait_decided(ada, review.pk)

    rita.wait_for_function(
        "() => document.querySelector('#review-status').textContent.trim() === 'Decided'")
    rita.wait_for_selector("#decide-area section.decision")
    assert rita.locator("#claim-box").count() == 0
    assert rita.locator("input[name=value__amount]").count() == 0
    assert rita.locator("button[value=approve], button[value=reject]").count() == 0
    assert "checking the fare" in rita.inner_text("#decide-area")  # what she typed stays
    rita.keyboard.press("a")  # no form: nothing to decide, nothing breaks
    assert Decision.objects.get(review=review).decided_by.username == "ada"


def test_a_review_whose_run_is_cancelled_shows_the_cancelled_notice_live(
    login, live_url, make_login_user
):
    review = start_and_wait_for_review(3002)
    rita = login("rina", "reviewer")
    open_review(rita, live_url, review)
    rita.wait_for_selector("#live-status")
    ops = make_login_user("otto", "ops")
    do_run_action(ops, review.run, "cancel", "ops stopped it")  # as the ops console does
    rita.wait_for_selector("#decide-area >> text=it can no longer be decided", timeout=30_000)
    assert rita.locator("#claim-box, form.decide").count() == 0


# ---- C: no page is wider than a 390 px phone; streamed output stays in its column

def page_width(page: Any) -> tuple[int, int]:
    return page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")


def test_no_page_scrolls_sideways_at_390_px(browser, login, live_url):
    from test_e2e_support_agent import REFUND

    run = runs.start_thread("support", {"customer": "c-42", "message": REFUND}, user=None,
                            title="Support: c-42 refund (layout)")
    support = wait_for(lambda: ReviewRequest.objects.filter(thread=run.thread, status="pending")
                       .first(), "the support agent to ask")
    expense = start_and_wait_for_review(3003)
    desk = login("lena", "admin")  # sees every page: ops and forks too
    phone = browser.new_context(viewport={"width": 390, "height": 844},
                                storage_state=desk.context.storage_state())
    page = phone.new_page()
    thread = support.thread.thread_id
    paths = {
        "inbox": "/", "review": f"/reviews/{expense.pk}/", "threads": "/threads/",
        "thread": f"/threads/{thread}/", "ops": "/ops/", "ops failed": "/ops/?status=waiting",
        "run": f"/ops/runs/{support.run_id}/",
        "fork": f"/threads/{thread}/checkpoints/{support.checkpoint_id}/fork/",
    }
    try:
        wide = {}
        for name, path in paths.items():
            page.goto(live_url + path)
            page.wait_for_load_state()
            scroll, client = page_width(page)
            if scroll > client:
                wide[name] = scroll
        assert wide == {}, f"wider than 390 px: {wide}"
    finally:
        phone.close()


def test_streamed_output_wraps_inside_its_column_beside_the_panel(login, live_url):
    """The trial saw it at 1280 px with a longer output; the demo's shorter lines run under
    the checkpoint panel from about 1100 px down, so this checks at 1024 px."""
    from test_e2e_support_agent import REFUND

    run = runs.start_thread("support", {"customer": "c-42", "message": REFUND}, user=None,
                            title="Support: c-42 refund (output)")
    wait_for(lambda: ReviewRequest.objects.filter(thread=run.thread, status="pending").first(),
             "the support agent to ask")
    page = login("lars", "reviewer")
    page.set_viewport_size({"width": 1024, "height": 800})
    page.goto(f"{live_url}/threads/{run.thread.thread_id}/")
    page.wait_for_selector("pre.output-data")
    boxes = page.evaluate("""() => [...document.querySelectorAll('pre.output-data')].map(p => [
        p.scrollWidth, p.clientWidth, p.getBoundingClientRect().right,
        document.querySelector('#checkpoint-detail').getBoundingClientRect().left])""")
    for scroll, client, right, panel in boxes:
        assert scroll <= client and right <= panel, boxes


# ---- E: `j` goes to the next review still open when it is pressed

def test_j_skips_a_review_decided_after_the_page_was_shown(login, live_url, make_login_user):
    reviews = [start_and_wait_for_review(n) for n in (3011, 3012, 3013)]
    page = login("jan", "reviewer")
    open_review(page, live_url, reviews[0])
    shown_next = int(page.get_attribute("#queue-next", "href").split("/")[2])
    other = make_login_user("kim", "reviewer")
    do_decide(other, ReviewRequest.objects.get(pk=shown_next), DecisionInput("approve"))
    page.keyboard.press("j")
    page.wait_for_function(
        "pk => document.querySelector('#review-page').dataset.review !== String(pk)",
        arg=reviews[0].pk)
    landed = int(page.get_attribute("#review-page", "data-review"))
    assert landed != shown_next
    assert ReviewRequest.objects.get(pk=landed).is_open
    assert page.url.endswith(f"/reviews/{landed}/")


# ---- D: the bulk count follows a live update that removed a selected row

def test_the_bulk_count_drops_a_selected_row_a_live_update_removed(login, live_url):
    from test_e2e_keyboard_flow import live_update

    reviews = [start_and_wait_for_review(n) for n in (3021, 3022, 3023)]
    page = login("bea", "reviewer")
    page.select_option("select[name=graph]", "expense")
    page.wait_for_url("**graph=expense**")
    for review in reviews:
        page.check(f"#bulk-{review.pk}")
    assert page.inner_text("#bulk-count") == "3 selected"
    ReviewRequest.objects.filter(pk=reviews[1].pk).update(status="cancelled")  # elsewhere
    live_update(page)
    assert page.locator("input[data-bulk-row]:checked").count() == 2
    assert page.inner_text("#bulk-count") == "2 selected"


# ---- F: after Ctrl+Enter rejects, the next review shows no hint about a box nobody is in

def hint_and_focus(page: Any) -> tuple[str, str]:
    return tuple(page.evaluate("""() => {
        const hint = document.querySelector('#review-page .pending-hint');
        return [hint.hidden ? '' : hint.textContent, document.activeElement.tagName];
    }"""))


def test_the_next_review_after_a_ctrl_enter_reject_has_no_stale_hint(login, live_url):
    first = start_and_wait_for_review(3031)
    start_and_wait_for_review(3032)
    page = login("fay", "reviewer")
    open_review(page, live_url, first)
    page.keyboard.press("r")
    page.keyboard.type("duplicate")
    page.keyboard.press("Control+Enter")
    wait_decided(page, first.pk)
    page.wait_for_timeout(400)  # settled: the focus has moved to the heading
    assert hint_and_focus(page) == ("", "H1")
    # What htmx does in that swap, step by step: it puts the focus back in the field of the
    # same id (the next review's reason, whose hint then shows), then reviewer.js moves it to
    # the heading. Whether the browser gets there before the swap settles is timing; the
    # hint must follow the focus either way.
    page.click("textarea[name=comment]")
    assert hint_and_focus(page) == ("Ctrl+Enter sends: reject. Esc leaves the field.",
                                    "TEXTAREA")
    page.evaluate("() => document.querySelector('#review-page h1').focus()")
    assert hint_and_focus(page) == ("", "H1")


# ---- H: focus after a refused fork or new run; JSON boxes and the token table for axe

def test_a_refused_fork_puts_the_focus_on_the_field_to_fix(login, live_url):
    review = start_and_wait_for_review(3041)
    page = login("olga", "admin")
    page.goto(f"{live_url}/threads/{review.thread.thread_id}/checkpoints/"
              f"{review.checkpoint_id}/fork/")
    page.click("form.fork button[type=submit]")  # no reason given: refused
    page.wait_for_selector("form.fork .has-error")
    assert active(page, "name") == "reason"
    assert active(page, "aria-invalid") == "true"


def test_a_refused_new_run_puts_the_focus_on_the_field_to_fix(login, live_url):
    page = login("nico", "admin")
    page.goto(f"{live_url}/runs/new/expense/")
    page.fill("input[name=input__employee]", "Bob Keller")
    page.fill("input[name=input__vendor]", "Lufthansa")
    page.fill("input[name=input__amount]", "twelve")  # the server refuses it
    page.click("form.new-run button[type=submit]")
    page.wait_for_selector("form.new-run .has-error")
    assert active(page, "name") == "input__amount"


AXE_RULES = """async (rules) => {
  const result = await axe.run(document, {runOnly: {type: 'rule', values: rules}});
  return result.violations.map(v =>
    v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
}"""


def rule_violations(page: Any, *rules: str) -> list[str]:
    from axe import AXE

    page.add_script_tag(url=AXE)
    return page.evaluate(AXE_RULES, list(rules))


def test_diff_json_boxes_and_the_token_table_pass_those_axe_rules(login, live_url):
    from test_e2e_support_agent import REFUND

    run = runs.start_thread("support", {"customer": "c-42", "message": REFUND}, user=None,
                            title="Support: c-42 refund (axe)")
    wait_for(lambda: ReviewRequest.objects.filter(thread=run.thread, status="pending").first(),
             "the support agent to ask")
    page = login("axel", "admin")
    page.goto(f"{live_url}/threads/{run.thread.thread_id}/")
    page.wait_for_selector("#checkpoint-detail table.diff pre.json")
    assert page.evaluate("""() => [...document.querySelectorAll('table.diff pre.json')]
        .some(p => p.scrollHeight > p.clientHeight)""")  # one of them does scroll
    assert rule_violations(page, "scrollable-region-focusable") == []
    label = page.get_attribute("table.diff pre.json", "aria-label")
    assert label and ("before" in label or "after" in label or "appended" in label)

    page.goto(f"{live_url}/account/api-tokens/")
    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create token')")
    page.wait_for_selector("text=Your tokens")
    assert rule_violations(page, "empty-table-header") == []
