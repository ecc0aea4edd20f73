"""In a real browser: the demo's publishing workflow, written LangGraph-style (TypedDict state,
add_node(fn), interrupt()), is reviewed, sent back for changes and approved like any graph."""

from __future__ import annotations

from e2e_helpers import screenshot, wait_decided, wait_for

from approvals.models import ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Thread

ARTICLE = {"title": "Ten tips for teh stand-up", "author": "Maya",
           "body": "Everyone should recieve teh agenda."}


def pending_review(thread: Thread, other_than: int | None = None) -> ReviewRequest:
    return wait_for(
        lambda: ReviewRequest.objects.filter(thread=thread, status="pending")
        .exclude(pk=other_than or 0).first(),
        "the run to pause at its review",
    )


def test_publishing_review_respond_then_approve(login, live_url):
    run = runs.start_thread("publishing", dict(ARTICLE), user=None, title="Stand-up tips")
    review = pending_review(run.thread)
    page = login("rita", "reviewer")
    page.goto(f"{live_url}/reviews/{review.pk}/")
    assert "'recieve' should be 'receive'" in page.inner_text("body")
    screenshot(page, "publishing-review")
    page.fill("textarea[name=text]", "Please fix the typos")
    page.click("button[value=respond]")
    wait_decided(page, review.pk)

    second = pending_review(run.thread, other_than=review.pk)
    page.goto(f"{live_url}/reviews/{second.pk}/")
    assert "revision 1" in page.inner_text("body")
    page.click("button[value=approve]")
    wait_decided(page, second.pk)
    wait_for(lambda: Thread.objects.get(pk=run.thread.pk).status == Thread.Status.DONE,
             "the thread to finish")
    page.goto(f"{live_url}/threads/{run.thread.thread_id}/")
    assert "https://blog.example.com/ten-tips-for-teh-stand-up" in page.inner_text("body")
    screenshot(page, "publishing-thread")
