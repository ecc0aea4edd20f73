"""Forking with edits from a checkpoint that several nodes wrote in one superstep (a fan-out's
branches): the engine, like LangGraph, will not guess which node an update is from, so the
fork form and the API choose the writer that keeps the checkpoint's next steps, or ask."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import ApiClient
from django.urls import reverse

from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.models import Run
from orchestration.runtime.savers import DjangoCheckpointSaver


def checkpoints(thread: Any) -> list[Any]:
    return DjangoCheckpointSaver().list(CheckpointConfig(thread.thread_id))


def written_by_several(thread: Any) -> Any:
    return next(t for t in checkpoints(thread) if len(t.metadata.writes) > 1)


def head(thread: Any) -> Any:
    return DjangoCheckpointSaver().get_tuple(CheckpointConfig(thread.thread_id))


@pytest.fixture
def fan_in(start_paused: Any) -> Any:
    from web_graphs import Article

    return start_paused("web_fan_in", Article(body="teh draft")).thread


def fork_form(thread: Any, checkpoint_id: str, client: Any, **fields: str) -> Any:
    url = reverse("checkpoint-fork", args=[thread.thread_id, checkpoint_id])
    return client.post(url, {"reason": "fix the typo", **fields})


def test_fork_form_edits_at_a_fan_in_keep_its_next_steps(
    fan_in, client_as, django_capture_on_commit_callbacks
):
    """The demo's publishing graph: edits at the checkpoint its three checks wrote were refused
    with "pass as_node=<node name>", a message the form gave no way to act on."""
    checked = written_by_several(fan_in)
    assert checked.checkpoint.next == ("review",)
    ops = client_as("ops")
    page = ops.get(reverse("checkpoint-fork", args=[fan_in.thread_id, checked.checkpoint.id]))
    html = page.content.decode()
    assert 'name="as_node"' in html and "the node that keeps the next steps (review)" in html
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = fork_form(fan_in, checked.checkpoint.id, ops,
                             field__body="the draft")
    assert response.status_code == 303, response.content.decode()
    run = Run.objects.get(thread=fan_in, kind=Run.Kind.FORK)
    assert run.as_node in checked.metadata.writes
    branch = head(fan_in)
    assert branch.checkpoint.next == ("review",)  # paused at the review again
    assert branch.checkpoint.values["body"] == "the draft"
    # the checks' findings are kept: the fork did not run them again
    assert branch.checkpoint.values["findings"] == checked.checkpoint.values["findings"]


def test_fork_form_takes_the_node_a_person_chooses(
    fan_in, client_as, django_capture_on_commit_callbacks
):
    checked = written_by_several(fan_in)
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = fork_form(fan_in, checked.checkpoint.id, client_as("ops"),
                             field__body="the draft", as_node="seo")
    assert response.status_code == 303
    assert Run.objects.get(thread=fan_in, kind=Run.Kind.FORK).as_node == "seo"


def test_fork_form_asks_which_node_when_no_writer_keeps_the_next_steps(
    start_paused, client_as, make_user, django_capture_on_commit_callbacks
):
    from web_graphs import Article

    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("web_split", Article(body="x"), user=make_user("ops"))
    split = written_by_several(run.thread)
    assert split.checkpoint.next == ("after_a", "after_b")
    ops = client_as("ops")
    response = fork_form(run.thread, split.checkpoint.id, ops, field__body="y")
    assert response.status_code == 400
    text = response.content.decode()
    assert "as a: after_a" in text and "as b: after_b" in text
    assert not Run.objects.filter(kind=Run.Kind.FORK).exists()
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = fork_form(run.thread, split.checkpoint.id, ops,
                             field__body="y", as_node="b")
    assert response.status_code == 303
    fork = Run.objects.get(kind=Run.Kind.FORK)
    assert fork.as_node == "b"
    assert head(run.thread).checkpoint.values["findings"][-1] == "after_b: ok"


def test_api_fork_at_a_fan_in_keeps_its_next_steps_or_asks(
    fan_in, make_user, django_capture_on_commit_callbacks
):
    checked = written_by_several(fan_in)
    api = ApiClient(make_user("ops"))
    url = f"/threads/{fan_in.thread_id}/checkpoints/{checked.checkpoint.id}/fork"
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = api.post(url, {"values": {"body": "the draft"}, "reason": "typo"})
    assert response.status_code == 201, response.content
    assert head(fan_in).checkpoint.next == ("review",)


def test_api_fork_where_no_writer_keeps_the_next_steps_is_422_on_as_node(
    make_user, django_capture_on_commit_callbacks
):
    from web_graphs import Article

    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("web_split", Article(body="x"), user=make_user("ops"))
    split = written_by_several(run.thread)
    api = ApiClient(make_user("ops"))
    url = f"/threads/{run.thread.thread_id}/checkpoints/{split.checkpoint.id}/fork"
    response = api.post(url, {"values": {"body": "y"}, "reason": "retry"})
    assert response.status_code == 422, response.content
    problem = response.json()
    assert "as a: after_a" in problem["errors"]["as_node"][0]
    assert not Run.objects.filter(kind=Run.Kind.FORK).exists()
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = api.post(url, {"values": {"body": "y"}, "reason": "retry", "as_node": "a"})
    assert response.status_code == 201, response.content
    unknown = api.post(url, {"values": {"body": "z"}, "reason": "r", "as_node": "nope"})
    assert unknown.status_code == 422
    assert "'nope' is not a node of graph 'web_split'" in unknown.json()["errors"]["as_node"][0]
