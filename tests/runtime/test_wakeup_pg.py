"""PostgreSQL's wake-up with several idle workers: one enqueue wakes one of them.

Real `stepwise_worker` processes on the test database, polling only every 30 s, so a task
picked up within seconds was announced to a worker, not polled for. Workers greet each other
on the channel when they start listening; one that has heard no peer neither takes turns
nor announces its claims. A worker logs
"claimed no task" (DEBUG) for every claim that found nothing: a worker woken for a task
another one took.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psycopg
import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult
from runtime_helpers import Worker, wait_for
from worker_tasks import noop

from orchestration.runtime.wakeup import CHANNEL, TAKEN, Waiter

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's"),
]

POLL = 30  # seconds: far longer than any wait below


def empty_claims(worker: Worker) -> int:
    return worker.output().count("claimed no task")


def idle(start_worker: Any) -> Worker:
    """A worker that has made its first claim (nothing there) and waits."""
    worker = start_worker("stepwise_worker", interval=POLL, LOG_LEVEL="DEBUG")
    wait_for(lambda: empty_claims(worker) >= 1, what="the worker's first claim", workers=[worker])
    time.sleep(0.5)  # into its wait: listening, or queued for the turn to
    return worker


def run(i: int, workers: list[Worker]) -> DBTaskResult:
    result = noop.enqueue(i)
    wait_for(lambda: DBTaskResult.objects.filter(pk=result.id, status="SUCCESSFUL").exists(),
             timeout=10, what=f"task {i} to be run", workers=workers)
    return DBTaskResult.objects.get(pk=result.id)


def test_an_enqueue_wakes_one_of_two_idle_workers(start_worker: Any) -> None:
    workers = [idle(start_worker), idle(start_worker)]
    before = [empty_claims(w) for w in workers]
    tasks = 12
    ran_by = []
    for i in range(tasks):
        row = run(i, workers)
        ran_by.append(row.worker_ids[-1])
        time.sleep(0.2)  # both idle again before the next enqueue
    time.sleep(0.5)
    wasted = sum(empty_claims(w) for w in workers) - sum(before)
    print(f"\n{tasks} enqueues, two idle workers: {wasted} claims that found nothing "
          f"(every idle worker woken: {tasks}); tasks per worker: "
          f"{sorted(ran_by.count(w) for w in set(ran_by))}")
    # Each enqueue woke one worker (a claim that finds nothing is a worker woken for a task
    # the other took); allow one for a notification delivered late at a change of turn.
    assert wasted <= 1
    # the turn to listen passes on to the other idle worker when one takes a task
    assert len(set(ran_by)) == 2


def test_a_task_announced_to_a_worker_that_dies_is_taken_by_the_next_in_turn(
    start_worker: Any,
) -> None:
    first = idle(start_worker)  # idle first: its turn to listen
    second = idle(start_worker)  # waits for the turn
    os.kill(first.pid, signal.SIGSTOP)  # its session holds the turn; it hears, and is stuck
    try:
        result = noop.enqueue(1)
        time.sleep(1.0)
        # the other idle worker was not woken: the announcement went to the one in turn
        assert DBTaskResult.objects.get(pk=result.id).status == "READY"
        started = time.monotonic()
    finally:
        first.kill()  # its session ends and with it its turn: the second takes the task
    wait_for(lambda: DBTaskResult.objects.filter(pk=result.id, status="SUCCESSFUL").exists(),
             timeout=10, what="the task to be taken over", workers=[second])
    took = time.monotonic() - started
    row = DBTaskResult.objects.get(pk=result.id)
    assert [w.rsplit(":", 1)[1] for w in row.worker_ids] == [str(second.pid)]
    assert took < 5, took  # announced, not polled (every 30 s)
    # and the worker that remains is now the one in turn: a new task wakes it at once
    started = time.monotonic()
    run(2, [second])
    assert time.monotonic() - started < 5


def advisory_locks() -> list[tuple[int, bool]]:
    """(backend pid, granted) of every advisory lock, held or asked for, on this database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND "
                       "database = (SELECT oid FROM pg_database WHERE datname = "
                       "current_database())")
        return cursor.fetchall()


def turn_locks() -> int:
    return len(advisory_locks())


def test_a_lone_worker_takes_no_turns_and_two_announce_what_they_take(start_worker: Any) -> None:
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")

        def taken() -> list[str]:
            return [n.payload[len(TAKEN):] for n in listener.notifies(timeout=0.5)
                    if n.payload.startswith(TAKEN)]

        alone = idle(start_worker)
        first = run(1, [alone])
        assert taken() == [] and turn_locks() == 0  # alone: nothing costs it more than before
        other = idle(start_worker)  # they greet each other: from now on they take turns
        second = run(2, [alone, other])
        assert taken() == [str(second.pk)]
        assert turn_locks() >= 1  # the idle worker whose turn it is holds the turn
        assert first.pk != second.pk


def turn_holder() -> list[int]:
    """The backend pids holding a turn's lock on this database."""
    return [pid for pid, granted in advisory_locks() if granted]


def backend_pid(waiter: Waiter) -> int:
    return waiter._conn.info.backend_pid


def test_a_worker_queued_for_the_turn_keeps_its_place_across_waits_and_never_takes_it_busy(
) -> None:
    first, second = Waiter(group="g"), Waiter(group="g")
    try:
        assert not first.wait(0.3)  # hears the second's greeting: takes the turn, free
        assert not second.wait(0.3)  # hears the answer: queued behind the first
        assert turn_holder() == [backend_pid(first)]
        assert not second.wait(0.2)  # timed out (its worker polls): still queued, no error
        first.claiming()
        first.claimed("a-task", more=False)  # took a task: the turn passes on at once
        assert not second.wait(0.2)
        assert turn_holder() == [backend_pid(second)]
        assert not first.wait(0.2)  # idle again: queued behind the second
        # the first polls and finds a task while queued: it leaves the queue, the turn
        # stays with the idle worker
        first.claiming()
        first.claimed("another-task", more=False)
        assert turn_holder() == [backend_pid(second)]
        second.claiming()
        second.claimed("a-third", more=False)
        assert turn_holder() == []  # nobody idle: nobody listens until one waits again
    finally:
        first.close()
        second.close()
