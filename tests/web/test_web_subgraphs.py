"""Subgraphs and streamed output in the web app: a review raised inside a subgraph, its
checkpoints folded in the tree (and forked from), and the text a node streamed."""

from __future__ import annotations

from django.urls import reverse

from approvals.models import ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Checkpoint, Run, RunOutput, Thread


def decide(client, review, capture, **data):
    with runs.run_inline(), capture(execute=True):
        return client.post(reverse("review-decide", args=[review.pk]), data)


def test_a_review_inside_a_subgraph_shows_in_the_inbox_with_its_path(start_paused, client_as):
    review = start_paused("web_subgraph")
    assert review.node == "reply|review"
    assert review.title == "Send the reply about login problem?"
    page = client_as("reviewer").get(reverse("inbox")).content.decode()
    assert "Send the reply about login problem?" in page
    assert "reply|review" in page


def test_the_tree_folds_the_subgraph_checkpoints_under_the_parent(start_paused, client_as):
    review = start_paused("web_subgraph")
    thread = review.thread
    child = list(
        Checkpoint.objects.filter(thread=thread, checkpoint_ns="reply").order_by("checkpoint_id")
    )
    assert [c.step for c in child] == [0, 1]
    page = client_as("reviewer").get(reverse("thread", args=[thread.thread_id])).content.decode()
    assert "Subgraph checkpoints" in page
    assert '<details class="subgraph" data-namespace="reply">' in page
    for c in child:
        assert f'data-checkpoint="{c.checkpoint_id}"' in page
    # the SVG tree itself only draws the thread's own checkpoints
    svg = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert all(c.checkpoint_id not in svg for c in child)
    # a reviewer may look but not fork
    assert "Fork from here" not in page
    assert (
        "Fork from here"
        in client_as("ops").get(reverse("thread", args=[thread.thread_id])).content.decode()
    )


def test_streamed_text_is_kept_with_the_run_and_shown_on_the_thread_page(start_paused, client_as):
    review = start_paused("web_subgraph")
    run = Run.objects.get(thread=review.thread)
    chunks = list(
        RunOutput.objects.filter(run=run).order_by("seq").values_list("namespace", "data")
    )
    assert chunks[0] == ("reply", "Dear ")
    assert chunks[-1] == ("reply", {"tool": "lookup", "args": {"subject": "login problem"}})
    live = client_as("reviewer").get(reverse("thread-live", args=[review.thread.thread_id]))
    text = live.content.decode()
    assert "Dear customer, your login problem is fixed." in text
    assert "lookup" in text


def test_approving_the_subgraph_review_finishes_the_run(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    review = start_paused("web_subgraph")
    decide(client_as("reviewer"), review, django_capture_on_commit_callbacks, action="approve")
    review.thread.refresh_from_db()
    assert review.thread.status == Thread.Status.DONE
    # the subgraph's step that wrote the draft ran once: its output was streamed once
    assert RunOutput.objects.filter(run__thread=review.thread, data="Dear ").count() == 1


def test_fork_from_a_subgraph_checkpoint_asks_the_review_again(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    review = start_paused("web_subgraph")
    decide(client_as("reviewer"), review, django_capture_on_commit_callbacks, action="reject")
    thread = review.thread
    before_review = Checkpoint.objects.get(thread=thread, checkpoint_ns="reply", step=1)
    data = {
        "namespace": "reply",
        "checkpoint_id": before_review.checkpoint_id,
        "reason": "the customer wrote again",
    }
    url = reverse("subgraph-fork", args=[thread.thread_id])
    assert client_as("reviewer").post(url, data).status_code == 403
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = client_as("ops").post(url, data)
    assert response.status_code in (302, 303)
    again = ReviewRequest.objects.get(thread=thread, status=ReviewRequest.Status.PENDING)
    assert again.node == "reply|review" and again.pk != review.pk
    assert Run.objects.filter(thread=thread, kind=Run.Kind.FORK).count() == 1


def test_fork_from_a_subgraph_checkpoint_needs_a_reason(start_paused, client_as):
    review = start_paused("web_subgraph")
    thread = review.thread
    cp = Checkpoint.objects.filter(thread=thread, checkpoint_ns="reply").first()
    url = reverse("subgraph-fork", args=[thread.thread_id])
    client_as("ops").post(url, {"namespace": "reply", "checkpoint_id": cp.checkpoint_id})
    assert Run.objects.filter(thread=thread).count() == 1


def test_a_fold_is_labelled_by_the_node_and_step_that_ran_the_subgraph(start_paused, client_as):
    # QA: folds read "under step 2 (agent)", the checkpoint the step started from, although
    # node "tools" ran them in step 3
    review = start_paused("web_subgraph")
    thread = review.thread
    child = Checkpoint.objects.filter(thread=thread, checkpoint_ns="reply").first()
    under = child.extra["stepwise_parent_checkpoint"]
    root_step = Checkpoint.objects.get(thread=thread, checkpoint_ns="", checkpoint_id=under).step
    page = client_as("reviewer").get(reverse("thread", args=[thread.thread_id])).content.decode()
    assert (f"<code>reply</code> (step {root_step + 1}) ran subgraph <code>reply</code>: "
            "2 checkpoints") in page
    assert "under step" not in page


def test_a_subgraph_checkpoint_state_can_be_viewed_by_whoever_sees_the_thread(
        start_paused, client_as):
    review = start_paused("web_subgraph")
    thread = review.thread
    cp = Checkpoint.objects.filter(thread=thread, checkpoint_ns="reply").order_by(
        "checkpoint_id").last()
    url = reverse("checkpoint-state", args=[thread.thread_id, cp.checkpoint_id]) + "?ns=reply"
    page = client_as("reviewer").get(reverse("thread", args=[thread.thread_id])).content.decode()
    assert url.replace("&", "&amp;") in page
    response = client_as("reviewer").get(url)
    assert response.status_code == 200
    assert response.json()["subject"] == "login problem"
    # the same id read as the thread's own checkpoint: not there
    assert client_as("reviewer").get(url.split("?")[0]).status_code == 404
    assert client_as(None).get(url).status_code in (403, 404)
