"""The runs API (orchestration/runs.py) and the worker task, executed in this process."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from orchestration import Command
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime.models import Checkpoint, Event, Run, Thread
from orchestration.runtime.registry import get_graph
from orchestration.runtime.runs import (
    RunNotCancellable,
    RunNotRetryable,
    RunNotStalled,
    ThreadHasActiveRun,
    ThreadNotResumable,
    UnknownCheckpoint,
    UnknownGraph,
    cancel_run,
    fork_thread,
    resume_stalled,
    resume_thread,
    retry_run,
    run_inline,
    start_thread,
)
from orchestration.runtime.signals import run_failed, run_finished, run_paused
from orchestration.runtime.tasks import execute_run
from orchestration.savers import DjangoCheckpointSaver

pytestmark = pytest.mark.django_db(transaction=True)

SMALL = {"expense_id": 1, "employee": "Ann", "vendor": "Office Depot",
         "amount": Decimal("40.00"), "description": "paper"}
LARGE = {"expense_id": 2, "employee": "Bob", "vendor": "Lufthansa",
         "amount": Decimal("1250.00"), "description": "flight"}
FLAGGED = {"expense_id": 3, "employee": "Dan", "vendor": "Shady Supplies Ltd",
           "amount": Decimal("75.00"), "description": "cables"}


@pytest.fixture
def signals() -> Iterator[dict[str, list[dict[str, Any]]]]:
    seen: dict[str, list[dict[str, Any]]] = {"paused": [], "finished": [], "failed": []}
    receivers = {
        "paused": lambda sender, **kw: seen["paused"].append(kw),
        "finished": lambda sender, **kw: seen["finished"].append(kw),
        "failed": lambda sender, **kw: seen["failed"].append(kw),
    }
    run_paused.connect(receivers["paused"])
    run_finished.connect(receivers["finished"])
    run_failed.connect(receivers["failed"])
    yield seen
    run_paused.disconnect(receivers["paused"])
    run_finished.disconnect(receivers["finished"])
    run_failed.disconnect(receivers["failed"])


def start_inline(input: dict[str, Any], graph: str = "expense") -> Run:
    with run_inline():
        run = start_thread(graph, input, user=None, title="test")
    run.refresh_from_db()
    return run


def approve(thread: Thread, **answer: Any) -> Run:
    with run_inline():
        run = resume_thread(
            thread, Command(resume={"action": "approve", "reviewer": "rita", **answer}),
            user=None, reason="reviewed",
        )
    run.refresh_from_db()
    return run


def test_small_expense_run_succeeds_and_sends_run_finished(signals: dict) -> None:
    run = start_inline(SMALL)
    assert run.status == Run.Status.SUCCEEDED
    assert run.thread.status == Thread.Status.DONE
    assert [kw["run"].pk for kw in signals["finished"]] == [run.pk]


def test_large_expense_run_waits_and_sends_run_paused_with_the_review_payload(
    signals: dict,
) -> None:
    run = start_inline(LARGE)
    assert run.status == Run.Status.WAITING
    assert run.thread.status == Thread.Status.WAITING
    [paused] = signals["paused"]
    [interrupt] = paused["interrupts"]
    assert interrupt.value["kind"] == "review"
    assert interrupt.value["title"] == "Approve expense #2 (€1,250.00)"
    assert set(interrupt.value["actions"]) == {"approve", "reject", "edit"}


def test_an_expense_without_a_number_is_titled_by_who_claims_what() -> None:
    # QA: expenses started through the API or "New run" were all "Approve expense #0"
    from demo.workflows.expense import Expense, review_request

    unnumbered = Expense(employee="Ann", vendor="Hotel", amount=Decimal("249"),
                         description="Team  offsite\nhotel")
    assert review_request(unnumbered)["title"] == (
        "Approve expense by Ann: Team offsite hotel (€249.00)")
    assert review_request(Expense(amount=Decimal("5")))["title"] == "Approve expense (€5.00)"
    assert "#0" not in review_request(Expense(employee="Ann"))["title"]


def test_resume_with_edit_pays_out_the_edited_amount() -> None:
    first = start_inline(LARGE)
    run = approve(first.thread, action="edit", values={"amount": 900})
    assert run.status == Run.Status.SUCCEEDED
    assert run.previous_id == first.pk
    state = get_graph("expense").with_checkpoint_saver(DjangoCheckpointSaver()).get_state(
        CheckpointConfig(run.thread.thread_id)
    )
    assert state.values.amount == Decimal("900.00")
    assert state.values.payout_ref == "PAY-000002-90000"


def test_failing_node_fails_the_run_with_error_and_traceback(signals: dict) -> None:
    run = start_inline(FLAGGED)
    assert run.status == Run.Status.FAILED
    assert run.thread.status == Thread.Status.FAILED
    assert "Shady Supplies Ltd" in run.error
    assert "PayoutRefused" in run.traceback
    assert [kw["run"].pk for kw in signals["failed"]] == [run.pk]


def test_retry_of_a_failed_run_runs_the_failed_node_again() -> None:
    failed = start_inline(FLAGGED)
    with run_inline():
        retry = retry_run(failed, user=None, reason="vendor cleared?")
    retry.refresh_from_db()
    assert retry.kind == Run.Kind.RETRY
    assert retry.status == Run.Status.FAILED  # the vendor is still flagged
    assert "Shady Supplies Ltd" in retry.error


def test_retry_of_a_failed_run_whose_checkpoints_were_pruned_is_refused() -> None:
    """Found in an ops trial: retention pruned a failed thread, a retry then started the graph
    from its defaults (amount 0, no vendor) and ended "done". Nothing runs now."""
    from datetime import timedelta

    from django.utils import timezone

    from orchestration.runtime.retention import prune_threads

    failed = start_inline(FLAGGED)
    Thread.objects.filter(pk=failed.thread_id).update(
        updated_at=timezone.now() - timedelta(days=40))
    assert prune_threads(older_than=timedelta(days=30)).threads == [failed.thread.thread_id]
    with pytest.raises(RunNotRetryable, match="no checkpoint to continue from.*retention"):
        retry_run(failed, user=None, reason="after the prune")
    assert Run.objects.filter(thread=failed.thread).count() == 1
    assert Thread.objects.get(pk=failed.thread_id).status == Thread.Status.FAILED


def test_fork_before_payout_with_override_pays_a_flagged_vendor() -> None:
    failed = start_inline(FLAGGED)
    before_payout = next(
        cp for cp in Checkpoint.objects.filter(thread=failed.thread).order_by("-checkpoint_id")
        if "payout" in cp.next
    )
    with run_inline():
        fork = fork_thread(failed.thread, before_payout.checkpoint_id,
                           {"compliance_override": True}, user=None, reason="cleared")
    fork.refresh_from_db()
    assert fork.status == Run.Status.SUCCEEDED, fork.error


def test_starting_a_run_on_a_thread_with_an_active_run_is_refused() -> None:
    run = start_thread("expense", LARGE, user=None)  # queued, no worker runs it
    with pytest.raises(ThreadHasActiveRun, match="already has a queued, running or stalled run"):
        resume_thread(run.thread, None, user=None)


def test_database_refuses_a_second_active_run_for_one_thread() -> None:
    run = start_thread("expense", LARGE, user=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(thread=run.thread, kind=Run.Kind.RESUME, status=Run.Status.RUNNING)


def test_resuming_a_finished_thread_is_refused() -> None:
    run = start_inline(SMALL)
    with pytest.raises(ThreadNotResumable, match="Fork it"):
        resume_thread(run.thread, None, user=None)


def test_forking_from_an_unknown_checkpoint_is_refused() -> None:
    run = start_inline(SMALL)
    with pytest.raises(UnknownCheckpoint, match="no checkpoint 'nope'"):
        fork_thread(run.thread, "nope", None, user=None, reason="x")


def test_starting_an_unknown_graph_is_refused() -> None:
    with pytest.raises(UnknownGraph, match="no graph named 'nope'"):
        start_thread("nope", {}, user=None)
    assert not Thread.objects.exists()


def test_retrying_a_run_that_did_not_fail_is_refused() -> None:
    run = start_inline(SMALL)
    with pytest.raises(RunNotRetryable, match="only failed runs"):
        retry_run(run, user=None, reason="x")


def test_cancelled_queued_run_is_skipped_by_the_worker() -> None:
    run = start_thread("expense", SMALL, user=None)
    cancel_run(run, user=None, reason="changed my mind")
    outcome = execute_run.call(run.pk)
    run.refresh_from_db()
    assert outcome["outcome"] == "skipped"
    assert run.status == Run.Status.CANCELLED
    assert run.thread.status == Thread.Status.CANCELLED
    assert not Checkpoint.objects.filter(thread=run.thread).exists()


def test_resume_stalled_refuses_a_run_whose_lease_is_live() -> None:
    run = start_thread("expense", SMALL, user=None)  # queued: nobody holds it yet
    with pytest.raises(RunNotStalled, match="not stalled"):
        resume_stalled(run, reason="ops")


def test_cancelling_a_finished_run_is_refused() -> None:
    run = start_inline(SMALL)
    with pytest.raises(RunNotCancellable, match="already succeeded"):
        cancel_run(run, user=None, reason="x")


def test_each_transition_is_recorded_as_an_event(settings: Any) -> None:
    settings.STEPWISE_PROGRESS_SECONDS = 0  # a run_progress event for every superstep
    run = start_inline(LARGE)
    kinds = list(Event.objects.filter(run=run).order_by("id").values_list("kind", flat=True))
    ours = [k for k in kinds if k.startswith("run_")]  # approvals adds its own events
    assert ours[:2] == ["run_queued", "run_started"]
    assert len(ours[2:-1]) >= 2
    assert set(ours[2:-1]) == {"run_progress"}
    assert ours[-1] == "run_waiting"


def test_progress_of_a_quick_pass_is_told_by_its_start_and_end(settings: Any) -> None:
    settings.STEPWISE_PROGRESS_SECONDS = 60  # coalesced: no pass of this test lasts that long
    run = start_inline(LARGE)
    ours = [k for k in Event.objects.filter(run=run).order_by("id")
            .values_list("kind", flat=True) if k.startswith("run_")]
    assert ours == ["run_queued", "run_started", "run_waiting"]


def test_publishing_respond_loops_back_to_a_new_review_of_the_revision(signals: dict) -> None:
    first = start_inline({"title": "Ten tips for teh stand-up", "author": "Maya",
                          "body": "Everyone should recieve teh agenda."}, graph="publishing")
    assert first.status == Run.Status.WAITING
    [paused] = signals["paused"]
    checks = paused["interrupts"][0].value["data"]["checks"]
    assert checks["spelling"] and checks["seo"]
    with run_inline():
        second = resume_thread(first.thread, Command(resume={
            "action": "respond", "text": "fix the typos", "reviewer": "rita"}), user=None)
    second.refresh_from_db()
    assert second.status == Run.Status.WAITING
    review = signals["paused"][1]["interrupts"][0].value
    assert review["data"]["revision"] == 1
    assert review["data"]["checks"]["spelling"] == []
    assert review["data"]["comments"] == ["rita: fix the typos"]
    third = approve(first.thread)
    assert third.status == Run.Status.SUCCEEDED


def test_concurrent_resumes_of_a_stalled_run_queue_it_once() -> None:
    """Found in an API trial: four resumes at once each answered "stalled" and queued a task.
    One queues the run; the others are refused (each its own connection and transaction)."""
    import threading

    from django.db import connection

    from orchestration.runtime.errors import RunNotStalled
    from orchestration.runtime.runs import resume_stalled

    run = start_inline(LARGE)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.STALLED)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def resume() -> None:
        try:
            start.wait()
            resume_stalled(Run.objects.get(pk=run.pk), reason="at once")
            outcomes.append("queued")
        except RunNotStalled:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=resume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["queued", "refused", "refused", "refused"]
    assert Event.objects.filter(run=run, kind="run_requeued").count() == 1
    assert Run.objects.get(pk=run.pk).status == Run.Status.QUEUED
