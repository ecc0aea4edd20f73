"""A graph written LangGraph-style (TypedDict state, add_node(fn), interrupt(), no edge to
END) registers and runs in the review app like any other: the demo's publishing workflow."""

from __future__ import annotations

from django.urls import reverse

from approvals.models import ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Thread

ARTICLE = {"title": "Ten tips for teh stand-up", "author": "Maya",
           "body": "Everyone should recieve teh agenda."}


def pending(thread: Thread) -> ReviewRequest:
    return ReviewRequest.objects.get(thread=thread, status=ReviewRequest.Status.PENDING)


def decide(client, review, capture, **data):
    with runs.run_inline(), capture(execute=True):
        return client.post(reverse("review-decide", args=[review.pk]), data)


def test_publishing_runs_through_pages_and_decisions(
    make_user, client_as, django_capture_on_commit_callbacks
) -> None:
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("publishing", dict(ARTICLE), user=make_user("ops"),
                                title="An article")
    thread = run.thread
    review = pending(thread)
    assert review.payload["data"]["checks"]["spelling"]
    reviewer = client_as("reviewer")
    page = reviewer.get(reverse("thread", args=[thread.thread_id]))
    assert page.status_code == 200 and "recieve" in page.content.decode()
    page = reviewer.get(reverse("review", args=[review.pk]))
    assert page.status_code == 200 and "Ten tips for teh stand-up" in page.content.decode()

    response = decide(reviewer, review, django_capture_on_commit_callbacks,
                      action="respond", text="fix the typos")
    assert response.status_code == 303
    second = pending(thread)
    assert second.pk != review.pk
    assert second.payload["data"]["revision"] == 1
    assert second.payload["data"]["checks"]["spelling"] == []

    decide(reviewer, second, django_capture_on_commit_callbacks, action="approve")
    thread.refresh_from_db()
    assert thread.status == Thread.Status.DONE
    page = reviewer.get(reverse("thread", args=[thread.thread_id]))
    assert "https://blog.example.com/ten-tips-for-teh-stand-up" in page.content.decode()
