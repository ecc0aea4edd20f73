"""Two reviews asked at once by parallel branches of one thread, decided through the web app
while real `db_worker` processes run the thread: neither blocks the other, every answer
reaches the engine once, and the thread resumes once per answer at most."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse
from runtime_helpers import log_lines, wait_for, wait_for_status

from approvals.models import Decision, ReviewRequest
from approvals.roles import ensure_roles
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.models import Run
from orchestration.runtime.registry import get_graph
from orchestration.runtime.savers import DjangoCheckpointSaver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reviewer() -> Client:
    ensure_roles(Group, Permission)
    user = User.objects.create_user("rev", password="pw")
    user.groups.add(Group.objects.get(name="reviewer"))
    client = Client()
    client.force_login(user)
    return client


def start_parallel(start_worker: Any, tmp_path: Path, hold: list[str]) -> tuple[Run, Any]:
    worker = start_worker()
    state = {"log": str(tmp_path / "nodes.log"), "gate": str(tmp_path / "gate"), "hold": hold}
    run = runs.start_thread("parallel", state, user=None, title="two reviews")
    wait_for_status(run, Run.Status.WAITING, workers=[worker])
    return run, worker


def reviews_of(run: Run) -> dict[str, ReviewRequest]:
    rows = ReviewRequest.objects.filter(thread=run.thread, status=ReviewRequest.Status.PENDING)
    return {r.node: r for r in rows}


def decide(client: Client, review: ReviewRequest) -> None:
    response = client.post(reverse("review-decide", args=[review.pk]), {"action": "approve"})
    assert response.status_code == 303, response.content.decode()[:2000]


def applied(run: Run) -> list[str]:
    graph = get_graph("parallel").with_checkpoint_saver(DjangoCheckpointSaver())
    return sorted(graph.get_state(CheckpointConfig(run.thread.thread_id)).values.applied)


def test_second_review_decided_while_the_first_ones_run_is_queued_joins_that_run(
    start_worker: Any, tmp_path: Path, reviewer: Client,
) -> None:
    run, worker = start_parallel(start_worker, tmp_path, hold=[])
    worker.stop()  # nobody picks the resume up yet: it stays queued
    asked = reviews_of(run)
    assert sorted(asked) == ["review_a", "review_b"]

    decide(reviewer, asked["review_a"])
    decide(reviewer, asked["review_b"])  # refused before: "thread already has a queued run"

    resumes = Run.objects.filter(thread=run.thread, kind=Run.Kind.RESUME)
    assert resumes.count() == 1
    resumed = resumes.get()
    assert set(Decision.objects.values_list("resumed_run", flat=True)) == {resumed.pk}
    wait_for_status(resumed, Run.Status.SUCCEEDED, workers=[start_worker()])
    assert applied(run) == ["review_a=approve", "review_b=approve"]
    assert Counter(log_lines(tmp_path / "nodes.log"))["after"] == 1


def test_second_review_decided_while_the_first_ones_run_works_is_delivered_by_it(
    start_worker: Any, tmp_path: Path, reviewer: Client,
) -> None:
    run, worker = start_parallel(start_worker, tmp_path, hold=["review_a:answered"])
    asked = reviews_of(run)
    log = tmp_path / "nodes.log"

    decide(reviewer, asked["review_a"])
    resumed = Run.objects.get(thread=run.thread, kind=Run.Kind.RESUME)
    wait_for(lambda: "review_a:answered" in log_lines(log), what="review_a to run its answer",
             workers=[worker])
    assert Run.objects.get(pk=resumed.pk).status == Run.Status.RUNNING
    decide(reviewer, asked["review_b"])  # while the run that carries review_a works
    (tmp_path / "gate").touch()

    wait_for_status(resumed, Run.Status.SUCCEEDED, workers=[worker])
    assert Run.objects.filter(thread=run.thread, kind=Run.Kind.RESUME).count() == 1
    assert set(Decision.objects.values_list("resumed_run", flat=True)) == {resumed.pk}
    assert applied(run) == ["review_a=approve", "review_b=approve"]
    counts = Counter(log_lines(log))
    assert counts["review_a:answered"] == 1 and counts["review_b:answered"] == 1
    assert counts["after"] == 1


def test_review_decided_after_the_run_paused_again_queues_a_new_run(
    start_worker: Any, tmp_path: Path, reviewer: Client,
) -> None:
    run, worker = start_parallel(start_worker, tmp_path, hold=[])
    asked = reviews_of(run)
    decide(reviewer, asked["review_a"])
    first = Run.objects.get(thread=run.thread, kind=Run.Kind.RESUME)
    wait_for_status(first, Run.Status.WAITING, workers=[worker])
    assert list(reviews_of(run)) == ["review_b"]  # still open, same review row

    decide(reviewer, asked["review_b"])
    second = Run.objects.filter(thread=run.thread, kind=Run.Kind.RESUME).exclude(pk=first.pk)
    wait_for_status(second.get(), Run.Status.SUCCEEDED, workers=[worker])
    assert applied(run) == ["review_a=approve", "review_b=approve"]
