"""A run's lifecycle around decisions, with real `db_worker` processes: a decision's run always
starts, a worker killed between a decision and the next checkpoint applies it exactly once,
and queued runs that lost their task are found and queued again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from runtime_helpers import ROOT, log_lines, subprocess_env, wait_for, wait_for_status

from approvals.models import Decision, ReviewRequest
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.inputs import InputKind, RunInput
from orchestration.runtime.leases import EXECUTE_RUN_PATH, is_orphaned, orphaned_runs
from orchestration.runtime.models import Event, Run
from orchestration.runtime.registry import get_graph
from orchestration.runtime.savers import DjangoCheckpointSaver
from orchestration.runtime.tasks import execute_run

pytestmark = pytest.mark.django_db(transaction=True)


def start_reviewed(tmp_path: Path, graph: str = "reviewed", hold: list[str] | None = None
                   ) -> Run:
    state = {"log": str(tmp_path / "nodes.log"), "gate": str(tmp_path / "gate"),
             "hold": hold or []}
    return runs.start_thread(graph, state, user=None, title=f"{graph} thread")


def open_review(run: Run) -> ReviewRequest:
    return wait_for(
        lambda: ReviewRequest.objects.filter(
            thread=run.thread, status=ReviewRequest.Status.PENDING
        ).first(),
        what="the review to open",
    )


def final_state(run: Run) -> Any:
    saver = DjangoCheckpointSaver()
    graph = get_graph(run.thread.graph_name).with_checkpoint_saver(saver)
    return graph.get_state(CheckpointConfig(run.thread.thread_id)).values


def latest_run(run: Run) -> Run:
    return Run.objects.filter(thread=run.thread).order_by("-pk").first()


# -- item: the task row commits with the run -------------------------------------------------


def test_execute_run_path_names_the_task() -> None:
    assert execute_run.module_path == EXECUTE_RUN_PATH


def test_a_queued_run_and_its_task_commit_together(tmp_path: Path) -> None:
    run = start_reviewed(tmp_path)
    task = DBTaskResult.objects.get(task_path=EXECUTE_RUN_PATH)
    assert task.args_kwargs["args"] == [run.pk]
    assert str(task.id) == Run.objects.get(pk=run.pk).task_result_id


def test_a_rolled_back_decision_leaves_neither_run_nor_task(tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        start_reviewed(tmp_path)
        assert DBTaskResult.objects.count() == 1  # inserted inside the transaction...
        raise Boom
    assert not Run.objects.exists()
    assert not DBTaskResult.objects.exists()  # ...and gone with it


DECIDE_AND_DIE = """
import os, signal, sys
import django
django.setup()
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from approvals.actions import DecisionInput, do_decide
from approvals.models import ReviewRequest

review = ReviewRequest.objects.select_related("thread").get(pk=int(sys.argv[1]))
user = User.objects.get(username=sys.argv[2])
with transaction.atomic():
    # the server process dies the moment the decision has committed
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    do_decide(user, review, DecisionInput(action="approve"))
"""


def test_server_killed_right_after_a_decision_commits_still_resumes_the_thread(
    start_worker: Any, tmp_path: Path,
) -> None:
    worker = start_worker()
    run = start_reviewed(tmp_path)
    wait_for_status(run, Run.Status.WAITING, workers=[worker])
    review = open_review(run)
    User.objects.create_user("rita", password="pw", is_superuser=True)

    server = subprocess.run(
        [sys.executable, "-c", DECIDE_AND_DIE, str(review.pk), "rita"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, timeout=60,
    )
    assert server.returncode == -signal.SIGKILL, server.stderr.decode()[-2000:]

    decision = Decision.objects.get(review=review)
    assert decision.resumed_run is not None
    wait_for_status(decision.resumed_run, Run.Status.SUCCEEDED, workers=[worker])
    assert final_state(run).applied == ["review=approve"]


# -- item: the sweeper and ops find queued runs that lost their task -------------------------


def test_sweeper_requeues_a_queued_run_whose_task_was_lost(
    start_worker: Any, tmp_path: Path,
) -> None:
    run = start_reviewed(tmp_path)
    DBTaskResult.objects.all().delete()  # the task never made it (the old on-commit window)
    assert [r.pk for r in orphaned_runs(grace=0)] == [run.pk]

    out = StringIO()
    call_command("resume_stalled", "--orphan-grace", "0", stdout=out)
    assert f"re-queued run {run.pk}" in out.getvalue()
    assert orphaned_runs(grace=0) == []
    assert Event.objects.filter(run=run, kind="run_requeued").count() == 1

    worker = start_worker()
    wait_for_status(run, Run.Status.WAITING, workers=[worker])


def test_a_lost_run_claimed_before_its_requeue_is_skipped_and_the_sweeper_goes_on(
    tmp_path: Path,
) -> None:
    """The sweeper lists a queued run as lost, then a worker claims it before the requeue:
    the requeue refuses with a RunError the sweeper skips. (It raised a TypeError instead,
    which ended the watching sweeper and, under honcho, the whole serving profile: found by
    bench.load on SQLite with 100 reviewers.)"""
    run = start_reviewed(tmp_path)
    DBTaskResult.objects.all().delete()
    listed = orphaned_runs(grace=0)
    assert [r.pk for r in listed] == [run.pk]
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING)  # a worker got there first
    with pytest.raises(runs.RunNotStalled) as refused:
        runs.requeue_orphan(listed[0], reason="lost", grace=0)
    assert refused.value.thread_id == run.thread.thread_id
    assert "running and not waiting for a lost task" in str(refused.value)
    assert not DBTaskResult.objects.exists()


def test_sweeper_leaves_queued_runs_whose_task_waits_or_that_are_young(tmp_path: Path) -> None:
    run = start_reviewed(tmp_path)
    assert orphaned_runs(grace=0) == []  # its task waits in the queue
    DBTaskResult.objects.all().delete()
    assert orphaned_runs(grace=3600) == []  # lost, but too young to tell
    assert not is_orphaned(run, grace=3600)
    call_command("resume_stalled", stdout=StringIO())
    assert not DBTaskResult.objects.exists()


def test_a_task_taken_by_a_worker_that_died_before_claiming_counts_as_lost(
    tmp_path: Path,
) -> None:
    run = start_reviewed(tmp_path)
    DBTaskResult.objects.update(status="RUNNING", started_at=Run.objects.get().created_at)
    assert orphaned_runs(grace=0) == [run]


def test_resume_and_retry_queue_a_lost_run_again(tmp_path: Path, settings: Any) -> None:
    settings.STEPWISE_ORPHAN_GRACE_SECONDS = 0
    run = start_reviewed(tmp_path)
    with pytest.raises(runs.RunNotStalled):
        runs.resume_stalled(run, reason="not lost yet")
    DBTaskResult.objects.all().delete()
    runs.resume_stalled(run, reason="lost its task")
    assert DBTaskResult.objects.count() == 1
    DBTaskResult.objects.all().delete()
    again = runs.retry_run(run, user=None, reason="lost it again")
    assert again.pk == run.pk and DBTaskResult.objects.count() == 1


# -- item: a worker killed between a decision and the next checkpoint ------------------------


@pytest.mark.parametrize("point", ["claimed", "answer stored"])
def test_worker_killed_between_decision_and_next_checkpoint_applies_it_once(
    start_worker: Any, tmp_path: Path, point: str,
) -> None:
    """`claimed`: the worker took the resume run and dies before the engine saw the answer.
    `answer stored`: the engine handed the answer to the saver, the node re-ran with it and
    the worker dies inside the node, before the next checkpoint. On SQLite the answer is
    committed on the paused checkpoint by then; on PostgreSQL (write-behind) it is held for
    that next checkpoint's statement (`put_writes_deferred`), so it dies with the worker and
    the retried run delivers it again from the run's input: applied once either way."""
    gate = tmp_path / "load-gate"
    hold = ["review:answered"] if point == "answer stored" else []
    first = start_worker()
    run = start_reviewed(tmp_path, "reviewed_gated", hold=hold)
    wait_for_status(run, Run.Status.WAITING, workers=[first])
    first.stop()
    review = open_review(run)
    doomed = start_worker(STEPWISE_TEST_LOAD_GATE=str(gate))
    # once it ran something, its system checks (which load every graph) are behind it
    ready = tmp_path / "ready"
    ready.mkdir()
    (ready / "gate").touch()
    warmup = runs.start_thread("steps", {"log": str(ready / "log"), "gate": str(ready / "gate")},
                               user=None)
    wait_for_status(warmup, Run.Status.SUCCEEDED, workers=[doomed])
    if point == "claimed":
        Path(f"{gate}.armed").touch()

    resumed = runs.answer_thread(run.thread, {review.interrupt_id: {"action": "approve"}},
                                 user=None, reason="approve")
    if point == "claimed":
        wait_for(lambda: Run.objects.get(pk=resumed.pk).status == Run.Status.RUNNING,
                 what="the worker to claim the run", workers=[doomed])
    else:
        log = tmp_path / "nodes.log"
        wait_for(lambda: "review:answered" in log_lines(log), what="the answered node",
                 workers=[doomed])
    doomed.kill()
    gate.touch()
    (tmp_path / "gate").touch()

    wait_for(lambda: _lease_expired(resumed), timeout=10, what="the lease to expire")
    call_command("resume_stalled", stdout=StringIO())
    second = start_worker()
    wait_for_status(resumed, Run.Status.SUCCEEDED, workers=[second])

    assert final_state(run).applied == ["review=approve"]  # the decision, applied once
    assert Counter(log_lines(tmp_path / "nodes.log"))["after"] == 1
    resumed.refresh_from_db()
    assert resumed.attempts == 2 and not resumed.error


def _lease_expired(run: Run) -> bool:
    run.refresh_from_db()
    return run.lease_expires_at is not None and run.lease_expires_at < timezone.now()


def test_retry_of_a_failed_resume_delivers_its_answer_once(tmp_path: Path) -> None:
    """A resume run that failed before the engine stored its answer (the thread waits at the
    same interrupt): the retry carries the answer; one that failed after does not resend it."""
    with runs.run_inline():
        run = start_reviewed(tmp_path)
    run.refresh_from_db()
    review = ReviewRequest.objects.get(thread=run.thread)
    answer = {review.interrupt_id: {"action": "approve"}}
    failed = Run.objects.create(thread=run.thread, kind=Run.Kind.RESUME, previous=run,
                                status=Run.Status.FAILED,
                                input=RunInput.resume_with(answer).encode())
    with runs.run_inline():
        retried = runs.retry_run(failed, user=None, reason="try again")
    carried = RunInput.decode(retried.input)
    assert carried.kind is InputKind.CONTINUE and carried.answers == answer
    retried.refresh_from_db()
    assert retried.status == Run.Status.SUCCEEDED, retried.error
    assert final_state(run).applied == ["review=approve"]


# -- RunInput ---------------------------------------------------------------------------------


def test_run_input_round_trips_through_serde() -> None:
    original = RunInput.resume_with({"i1": {"action": "approve", "values": {"n": 1}}})
    assert RunInput.decode(original.encode()) == original
    fork = RunInput.fork({"amount": 3})
    assert RunInput.decode(fork.encode()) == fork


def test_run_input_reads_the_envelope_runs_were_queued_with_before() -> None:
    from orchestration.checkpoint import serde

    old = serde.dumps({"type": "command", "resume": {"action": "approve"}, "update": None,
                       "goto": []})
    decoded = RunInput.decode(old)
    assert decoded.kind is InputKind.COMMAND and decoded.resume == {"action": "approve"}


def test_an_answer_already_given_is_kept() -> None:
    merged = RunInput.resume_with({"a": 1}).with_answers({"a": 2, "b": 3})
    assert merged.answers == {"a": 1, "b": 3}


def test_only_answers_to_pending_interrupts_are_sent() -> None:
    given = RunInput.resume_with({"a": 1, "b": 2})
    assert given.command({"b", "c"}).resume == {"b": 2}
    assert given.command(set()) is None  # the engine holds both: continue with invoke(None)


def test_the_worker_module_does_not_import_the_run_actions() -> None:
    """runs -> tasks only: `tasks` reads its input from `inputs`, never from `runs`."""
    import ast

    source = (ROOT / "orchestration" / "runtime" / "tasks.py").read_text()
    imported = {
        node.module for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "orchestration.runtime.runs" not in imported
    assert "orchestration.runtime.inputs" in imported
