"""A decision queues its resume run by one insert that writes nothing when the thread has an
active run (`runqueue.insert_run_unless_active`): then, and only then, the answer joins that
run under its row lock. Whatever the branch, no answer is lost, the thread resumes once per
answer at most, and an error afterwards leaves nothing written."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from approvals.actions import DecisionInput, ReviewError, do_decide
from approvals.models import Decision, ReviewRequest
from orchestration.runtime import runqueue, runs
from orchestration.runtime.inputs import RunInput
from orchestration.runtime.models import Event, Run, Thread

ACTIVE = [Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.STALLED]


def _resume_run(thread: Thread, user=None) -> Run:
    return Run(thread=thread, kind=Run.Kind.RESUME, input=b"\x80", requested_by=user,
               reason="Approve review #1")


def _queue(thread: Thread, run: Run) -> bool:
    return runqueue.insert_run_unless_active(run, thread, actor=None, reason="Approve review #1",
                                             data={"kind": "resume"})


@pytest.mark.parametrize("status", ACTIVE)
def test_nothing_is_written_when_the_thread_has_an_active_run(make_thread, make_run, status):
    thread = make_thread()
    paused = make_run(thread, status=Run.Status.WAITING)
    make_run(thread, status=status)
    before = thread.updated_at
    run = _resume_run(thread)
    assert _queue(thread, run) is False
    assert run.pk is None
    assert Run.objects.filter(thread=thread).count() == 2
    assert Run.objects.get(pk=paused.pk).status == Run.Status.WAITING
    thread.refresh_from_db()
    assert (thread.status, thread.updated_at) == (Thread.Status.WAITING, before)
    assert not Event.objects.filter(thread=thread, kind="run_queued").exists()


def test_the_run_is_inserted_after_the_latest_run_with_its_moves_and_event(
    make_thread, make_run, make_user
):
    user = make_user("reviewer")
    thread = make_thread()
    other = make_thread()
    make_run(other, status=Run.Status.QUEUED)  # another thread's active run: no matter
    paused = make_run(thread, status=Run.Status.WAITING)
    done = make_run(thread, status=Run.Status.SUCCEEDED)
    Run.objects.filter(pk__in=[paused.pk, done.pk]).update(created_at=done.created_at)
    run = _resume_run(thread, user)
    assert runqueue.insert_run_unless_active(run, thread, actor=user, reason="why",
                                             data={"kind": "resume"}) is True
    stored = Run.objects.get(pk=run.pk)
    assert run.previous_id == stored.previous_id == done.pk  # a created_at tie: by id
    assert stored.status == Run.Status.QUEUED and stored.requested_by_id == user.pk
    assert not run._state.adding
    assert Run.objects.get(pk=paused.pk).status == Run.Status.ANSWERED
    thread.refresh_from_db()
    assert thread.status == Thread.Status.RUNNING
    assert list(Event.objects.filter(thread=thread).values_list(
        "kind", "run_id", "actor_id", "reason", "data")) == [
        ("run_queued", run.pk, user.pk, "why", {"kind": "resume"})]


def test_a_thread_with_no_run_gets_a_run_with_no_previous(make_thread):
    thread = make_thread()
    run = _resume_run(thread)
    assert _queue(thread, run) is True
    assert Run.objects.get(pk=run.pk).previous_id is None


@pytest.mark.parametrize("status", [Run.Status.QUEUED, Run.Status.RUNNING])
def test_an_answer_to_a_thread_with_an_active_run_joins_that_run(make_thread, make_run,
                                                                  make_user, status):
    thread = make_thread(status=Thread.Status.RUNNING)
    active = make_run(thread, kind=Run.Kind.RESUME, status=status,
                      input=RunInput.resume_with({"first": "yes"}).encode())
    got = runs.answer_thread(thread, {"second": "no"}, user=make_user("reviewer"))
    assert got.pk == active.pk
    assert Run.objects.filter(thread=thread).count() == 1
    stored = RunInput.decode(Run.objects.get(pk=active.pk).input)
    assert stored.answers == {"first": "yes", "second": "no"}
    assert list(Event.objects.filter(thread=thread).values_list("kind", flat=True)) == [
        "run_answers_added"]


def test_two_answers_in_turn_resume_the_thread_once(make_thread, make_run, make_user):
    thread = make_thread()
    make_run(thread, status=Run.Status.WAITING)
    first = runs.answer_thread(thread, {"a": 1}, user=make_user("reviewer", username="one"))
    second = runs.answer_thread(thread, {"b": 2}, user=make_user("reviewer", username="two"))
    assert first.pk == second.pk
    assert Run.objects.filter(thread=thread, status__in=Run.ACTIVE).count() == 1
    assert RunInput.decode(Run.objects.get(pk=first.pk).input).answers == {"a": 1, "b": 2}


def test_an_error_after_the_run_is_queued_leaves_nothing_written(start_paused, make_user):
    """The decision's insert fails after its run was queued (a decision row for the review
    exists already): do_decide's transaction takes back the review's update and the run."""
    review = start_paused()
    user = make_user("admin")
    runs_before = set(Run.objects.filter(thread=review.thread).values_list("pk", flat=True))
    events_before = Event.objects.filter(thread=review.thread).count()
    Decision.objects.create(review=review, decided_by=user, action="approve")
    with pytest.raises(ReviewError):
        do_decide(user, review, DecisionInput(action="approve"))
    assert set(Run.objects.filter(thread=review.thread).values_list("pk", flat=True)) == \
        runs_before
    assert Event.objects.filter(thread=review.thread).count() == events_before
    assert ReviewRequest.objects.get(pk=review.pk).status == ReviewRequest.Status.PENDING


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_an_answer_racing_a_run_queued_by_another_transaction(make_thread, make_run,
                                                               make_user, outcome):
    """PostgreSQL: another transaction has inserted an active run, not committed yet. The
    answer's insert waits for it: committed, the answer joins that run; rolled back, the
    answer queues its own. (SQLite: one writer at a time, nothing can interleave.)"""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite transactions that write never overlap (BEGIN IMMEDIATE)")
    thread = make_thread()
    make_run(thread, status=Run.Status.WAITING)
    user = make_user("reviewer")
    inserted, release = threading.Event(), threading.Event()
    other: dict[str, int] = {}

    def concurrent() -> None:
        try:
            with transaction.atomic():
                run = Run.objects.create(thread=thread, kind=Run.Kind.RESUME,
                                         input=RunInput.resume_with({"a": 1}).encode())
                other["pk"] = run.pk
                inserted.set()
                release.wait(10)
                if outcome == "rollback":
                    transaction.set_rollback(True)
        finally:
            inserted.set()
            connections.close_all()

    worker = threading.Thread(target=concurrent)
    worker.start()
    assert inserted.wait(10)
    threading.Timer(0.3, release.set).start()  # let the answer's insert wait first
    started = time.monotonic()
    got = runs.answer_thread(thread, {"b": 2}, user=user)
    worker.join(10)
    assert time.monotonic() - started >= 0.2  # it waited for the other transaction
    active = list(Run.objects.filter(thread=thread, status__in=Run.ACTIVE))
    assert [r.pk for r in active] == [got.pk]
    answers = RunInput.decode(active[0].input).answers
    if outcome == "commit":
        assert got.pk == other["pk"] and answers == {"a": 1, "b": 2}
    else:
        assert got.pk != other.get("pk") and answers == {"b": 2}


def test_the_queued_run_points_at_its_task_row_and_a_joining_answer_adds_none(
    make_thread, make_run, make_user
):
    """The run is inserted with its task row's id (no update of the run follows), the row
    names the run; an answer that joins the run writes no task row (nor a reserved one)."""
    from django_tasks_db.models import DBTaskResult

    from orchestration.runtime.tasks import execute_run

    thread = make_thread()
    make_run(thread, status=Run.Status.WAITING)
    tasks = DBTaskResult.objects.count()
    with CaptureQueriesContext(connection) as ctx:
        run = runs.answer_thread(thread, {"a": 1}, user=make_user("reviewer", username="one"))
    assert not [q["sql"] for q in ctx.captured_queries if "SET task_result_id" in q["sql"]]
    stored = Run.objects.get(pk=run.pk)
    assert stored.task_result_id == run.task_result_id != ""
    row = DBTaskResult.objects.get(pk=stored.task_result_id)
    assert row.args_kwargs == {"args": [run.pk], "kwargs": {}}
    assert row.task_path == execute_run.module_path and row.status == "READY"
    runs.answer_thread(thread, {"b": 2}, user=make_user("reviewer", username="two"))
    assert DBTaskResult.objects.count() == tasks + 1


def test_a_resume_run_is_inserted_pointing_at_its_task_row(make_thread, make_run):
    """`insert_run` (resume, fork, retry) takes the task row too: the run points at it from
    its insert on, the row names the run."""
    from django_tasks_db.models import DBTaskResult

    thread = make_thread()
    make_run(thread, status=Run.Status.WAITING)
    with CaptureQueriesContext(connection) as ctx:
        run = runs.resume_thread(thread, None, user=None)
    assert not [q["sql"] for q in ctx.captured_queries if "SET task_result_id" in q["sql"]]
    row = DBTaskResult.objects.get(pk=Run.objects.get(pk=run.pk).task_result_id)
    assert row.args_kwargs == {"args": [run.pk], "kwargs": {}}
