"""The support-agent demo in a real browser: the model's streamed text on the thread page,
the tools subgraph folded in the tree, a tool call edited and another rejected with a reason
that the model answers."""

from __future__ import annotations

from e2e_helpers import screenshot, wait_decided, wait_for

from approvals.models import ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Thread
from orchestration.savers import DjangoStore

REFUND = "My order A-1001 arrived damaged, I want a refund. Please email me."


def pending_review(thread: Thread, title: str) -> ReviewRequest:
    return wait_for(
        lambda: ReviewRequest.objects.filter(thread=thread, status="pending", title=title).first(),
        f"the review {title!r}",
    )


def test_support_agent_tool_calls_are_reviewed_in_the_browser(login, live_url):
    run = runs.start_thread("support", {"customer": "c-42", "message": REFUND}, user=None,
                            title="Support: c-42 refund")
    thread = run.thread
    refund = pending_review(thread, "Allow issue_refund for c-42?")
    assert refund.node == "tools|review"

    page = login("rita", "reviewer")
    page.goto(f"{live_url}/threads/{thread.thread_id}/")
    output = page.inner_text("#run-output")
    assert "Your Espresso machine arrived damaged. I will refund 249.00 EUR." in output
    page.click("details.subgraph[data-namespace=tools] > summary")
    assert page.locator("details.subgraph[data-namespace=tools] li[data-checkpoint]").count() >= 2
    screenshot(page, "support-thread")

    page.goto(f"{live_url}/")
    assert "in tools|review" in page.inner_text("main")
    page.goto(f"{live_url}/reviews/{refund.pk}/")
    page.fill("input[name=value__amount]", "200")
    page.fill("textarea[name=comment]", "Partial refund: the box was opened")
    screenshot(page, "support-review")
    page.click("button[value=edit]")
    wait_decided(page, refund.pk)

    email = pending_review(thread, "Allow send_email for c-42?")
    page.goto(f"{live_url}/threads/{thread.thread_id}/")
    page.wait_for_selector("#run-output")
    page.goto(f"{live_url}/reviews/{email.pk}/")
    page.fill("textarea[name=comment]", "the customer asked us to call instead")
    page.click("button[value=reject]")
    wait_decided(page, email.pk)

    wait_for(lambda: Thread.objects.get(pk=thread.pk).status == Thread.Status.DONE,
             "the agent to answer the rejection and finish")
    page.goto(f"{live_url}/threads/{thread.thread_id}/")
    assert "I will not send an email then." in page.inner_text("#run-output")
    refund_row = DjangoStore().get(("refunds", "c-42"), "A-1001")
    assert refund_row is not None and refund_row.value["amount"] == 200.0
    screenshot(page, "support-done")
