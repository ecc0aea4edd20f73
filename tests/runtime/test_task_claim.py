"""Which task row `stepwise_worker` claims next, and what claiming it costs.

The same rows in the same order on every database (PostgreSQL's one-statement claim,
`orchestration.runtime.taskclaim`, and the library's claim elsewhere); on PostgreSQL the
claim is one statement outside any transaction, and skips a row another session holds.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from orchestration.runtime.management.commands.stepwise_worker import (
    WRITER_GRACE_SECONDS,
    WakingWorker,
)
from orchestration.runtime.wakeup import Waiter
from orchestration.runtime.write_behind import close_writers, writer_for

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "approvals.notify.email_review_overdue"


def row(name: str, *, priority: int = 0, queue: str = "default", backend: str = "default",
        run_after: Any = None, status: str = "READY", age: float = 0.0) -> str:
    """A task row as the library enqueues it; its `args` name it in the assertions."""
    created = DBTaskResult.objects.create(
        args_kwargs={"args": [name], "kwargs": {}}, task_path=PATH, priority=priority,
        queue_name=queue, backend_name=backend, status=status,
        run_after=run_after or get_date_max(),
    )
    # enqueued_at is auto_now_add: older rows are made older afterwards
    DBTaskResult.objects.filter(pk=created.pk).update(
        enqueued_at=timezone.now() - timedelta(seconds=age))
    return str(created.pk)


def worker(queues: str = "default", exclude: str = "", worker_id: str = "host:77") -> Any:
    return WakingWorker(
        queue_names=queues.split(","), interval=0.1, batch=True, backend_name="default",
        startup_delay=False, max_tasks=None, worker_id=worker_id,
        excluded_queue_names=exclude.split(",") if exclude else [],
    )


def claims(w: Any) -> list[str]:
    """Names of the rows `w` claims, in order, until none is ready."""
    names = []
    while (task := w._claim_next()[0]) is not None:
        names.append(task.args_kwargs["args"][0])
    return names


def test_ready_rows_are_claimed_by_priority_then_due_time_then_age() -> None:
    now = timezone.now()
    row("old", age=30)
    row("new", age=1)
    row("urgent", priority=10)
    row("low", priority=-5, age=60)
    row("was-due", run_after=now - timedelta(seconds=5))
    row("not-due-yet", run_after=now + timedelta(hours=1))
    row("running", status="RUNNING", age=90)
    row("other-queue", queue="mail", age=90)
    row("other-backend", backend="elsewhere", age=90)
    # equal priority: a row that was due at some time goes before those due at any time
    # (run_after's sentinel is year 9999), then the oldest first
    assert claims(worker()) == ["urgent", "was-due", "old", "new", "low"]
    assert claims(worker("*", exclude="default")) == ["other-queue"]


def test_a_claimed_row_is_running_under_the_worker_with_the_fields_the_library_sets() -> None:
    first = row("a")
    task, retrieved = worker(worker_id="host:77")._claim_next()
    assert retrieved and str(task.pk) == first
    assert (task.status, task.worker_ids) == ("RUNNING", ["host:77"])
    assert task.args_kwargs == {"args": ["a"], "kwargs": {}}  # JSON decoded, as the ORM's
    assert task.task.name == "email_review_overdue"
    stored = DBTaskResult.objects.get(pk=first)
    assert (stored.status, stored.worker_ids, stored.started_at) == (
        "RUNNING", ["host:77"], task.started_at)
    # a row sent again (lost_tasks) keeps its earlier worker ids, as the library's claim
    DBTaskResult.objects.filter(pk=first).update(status="READY")
    again, _ = worker(worker_id="host:78")._claim_next()
    assert again.worker_ids == ["host:77", "host:78"]


def test_the_claimed_row_is_the_instance_the_orm_reads() -> None:
    """The claim's `DBTaskResult` (on PostgreSQL built from the statement's row with the
    ORM's converters) equals, field by field and in its state, the one the ORM reads after
    the claim: JSON decoded, timestamps aware, ids the same types."""
    first = row("a")
    DBTaskResult.objects.filter(pk=first).update(
        return_value={"x": [1, "two", None]}, exception_class_path="", traceback="")
    task, _ = worker(worker_id="host:77")._claim_next()
    stored = DBTaskResult.objects.get(pk=first)
    for field in DBTaskResult._meta.concrete_fields:
        claimed, read = getattr(task, field.attname), getattr(stored, field.attname)
        # (the library's claim elsewhere leaves its TaskResultStatus, a str, in `status`)
        assert claimed == read and isinstance(claimed, type(read)), field.name
    assert (task._state.db, task._state.adding) == (stored._state.db, stored._state.adding)
    assert task.task_result.args == ["a"]


def test_on_postgresql_a_claim_is_one_statement_and_no_transaction() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement claim is PostgreSQL's")
    row("a")
    w = worker()
    w._claim_next()  # a worker's first claim builds its statement
    row("b")
    with CaptureQueriesContext(connection) as queries:
        task, _ = w._claim_next()
        none, _ = w._claim_next()
    assert task.args_kwargs["args"] == ["b"] and none is None
    assert len(queries) == 2, [q["sql"] for q in queries]  # no BEGIN/COMMIT either
    assert all(q["sql"].startswith("WITH k AS (UPDATE") for q in queries)


def test_on_sqlite_a_claim_is_one_write_transaction_of_one_statement() -> None:
    """`taskclaim_sqlite`: BEGIN IMMEDIATE, the claim's UPDATE ... RETURNING, COMMIT; an
    empty claim the same, changing nothing."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's claim")
    row("a")
    w = worker()
    w._claim_next()
    row("b")
    with CaptureQueriesContext(connection) as queries:
        task, _ = w._claim_next()
        none, _ = w._claim_next()
    assert task.args_kwargs["args"] == ["b"] and none is None
    assert [q["sql"].split()[0] for q in queries] == ["BEGIN", "UPDATE", "COMMIT"] * 2
    assert all("RETURNING" in q["sql"] for q in queries if q["sql"].startswith("UPDATE"))
    assert not connection.in_atomic_block


def test_two_workers_claiming_at_once_take_every_row_exactly_once() -> None:
    """Two workers, each on its own connection (SQLite: two writers queueing on the write
    lock; PostgreSQL: SKIP LOCKED), claiming until none is ready: every row claimed by one
    of them, none twice, each row stored under the worker that claimed it."""
    names = [f"r{i}" for i in range(30)]
    for i, name in enumerate(names):
        row(name, age=100 - i)
    taken: dict[str, list[str]] = {"host:1": [], "host:2": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def claim_all(worker_id: str) -> None:
        try:
            w = worker(worker_id=worker_id)
            start.wait(10)
            while True:
                task, retrieved = w._claim_next()
                if task is None and retrieved:
                    return
                if task is not None:
                    taken[worker_id].append(task.args_kwargs["args"][0])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim_all, args=(wid,)) for wid in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(taken["host:1"] + taken["host:2"]) == sorted(names)
    for worker_id, claimed in taken.items():
        for name in claimed:
            stored = DBTaskResult.objects.get(args_kwargs__args=[name])
            assert (stored.status, stored.worker_ids) == ("RUNNING", [worker_id])


def test_on_postgresql_a_row_another_session_holds_is_skipped_not_waited_for() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite claims under its write lock")
    held = row("held", age=10)
    row("free")
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                DBTaskResult.objects.select_for_update().get(pk=held)
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        assert claims(worker()) == ["free"]
    finally:
        release.set()
        holder.join()
    assert claims(worker()) == ["held"]


# --- a worker taking the run a task names (tasks._claim) ---


def run_fields(run: Any) -> dict[str, Any]:
    return {f.attname: getattr(run, f.attname) for f in type(run)._meta.concrete_fields}


def test_taking_a_run_marks_it_and_its_thread_running_and_records_its_start_once(
    tmp_path: Any,
) -> None:
    from orchestration.runtime.leases import worker_id
    from orchestration.runtime.models import Event, Run
    from orchestration.runtime.runs import start_thread
    from orchestration.runtime.tasks import _claim

    queued = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    with CaptureQueriesContext(connection) as queries:
        lease, run = _claim(queued.pk)
    if connection.vendor == "postgresql":  # the claim, both rows and the event: one statement
        assert len(queries) == 1, [q["sql"] for q in queries]
    assert lease is not None and run is not None
    assert (run.status, run.attempts, run.worker, run.lease_token) == (
        "running", 1, worker_id(), lease.token)
    assert run.started_at is not None and run.lease_expires_at > run.started_at
    # the instances hold exactly what the rows hold, typed as the ORM types them
    stored = Run.objects.select_related("thread").get(pk=queued.pk)
    assert run_fields(run) == run_fields(stored)
    assert run_fields(run.thread) == run_fields(stored.thread)
    assert stored.thread.status == "running"
    started = Event.objects.get(run=run, kind="run_started")
    assert started.thread_id == run.thread_id
    assert started.data == {"attempt": 1, "worker": run.worker}
    # a run someone holds is not taken again: nothing changes, no second event
    assert _claim(queued.pk) == (None, None)
    assert run_fields(Run.objects.get(pk=queued.pk)) == run_fields(stored)
    assert Event.objects.filter(run=run, kind="run_started").count() == 1


def test_on_postgresql_a_run_execution_writes_its_rows_and_events_in_two_statements(
    tmp_path: Any,
) -> None:
    """Taking the run (run, thread, `run_started`: one statement) and recording its end (the
    fenced run update returning the input, thread and `run_succeeded`: one statement,
    `runend.end_run`): seven ORM statements and a read before (the checkpoint saver's own
    statements not counted)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's statements (runclaim, runend)")
    _run_rows_and_events_written_once(tmp_path, 2)


def test_on_sqlite_a_run_execution_writes_its_rows_and_events_in_six_fixed_statements(
    tmp_path: Any,
) -> None:
    """SQLite (`runclaim.claim_run_sqlite`, `runend._end_run_sqlite`): the run's and the
    thread's updates, each returning what the ORM read back, and the event's insert, at the
    claim and again at the end; no read of the run."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's statements (runclaim, runend)")
    statements = _run_rows_and_events_written_once(tmp_path, 4)
    events = [sql for sql in statements if sql.startswith(
        ('INSERT INTO "orchestration_event"', "INSERT INTO orchestration_event"))]
    assert len(events) == 2 and all("RETURNING id" in sql for sql in events), events


def _run_rows_and_events_written_once(tmp_path: Any, updates: int) -> list[str]:
    from orchestration.runtime.models import Event, Run
    from orchestration.runtime.runs import start_thread
    from orchestration.runtime.tasks import execute_run

    # the gate is open: the run goes from start to end
    queued = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(tmp_path)},
                          user=None)
    with CaptureQueriesContext(connection) as queries:
        assert execute_run.call(queued.pk)["outcome"] == "succeeded"
    run_rows = [q["sql"] for q in queries
                if ("orchestration_thread SET" in q["sql"].replace('"', "")
                    or "orchestration_run SET" in q["sql"].replace('"', ""))
                and "fence AS" not in q["sql"]
                and not q["sql"].startswith("UPDATE orchestration_run SET heartbeat_at")
                and "head_checkpoint_id = %s WHERE" not in q["sql"]]
    assert len(run_rows) == updates, run_rows
    if updates == 2:
        assert ["orchestration_event" in sql for sql in run_rows] == [True, True]
    assert not [q for q in queries if q["sql"].startswith('SELECT "orchestration_run"')]
    assert list(Event.objects.filter(run_id=queued.pk).values_list("kind", flat=True)
                .order_by("pk")) == ["run_queued", "run_started", "run_succeeded"]
    run = Run.objects.select_related("thread").get(pk=queued.pk)
    assert (run.status, run.lease_token, run.thread.status) == ("succeeded", "", "done")
    assert run.thread.head_checkpoint_id
    return [q["sql"] for q in queries]


def test_a_success_is_recorded_as_set_successful_records_it() -> None:
    """`TaskClaim.succeeded` against the library's `set_successful` on two claimed rows:
    the same values stored and left on the instance, the same pre_save/post_save signals."""
    from django.db.models.signals import post_save, pre_save

    row("a")
    row("b", age=5)
    w = worker()
    library, _ = w._claim_next()
    ours, _ = w._claim_next()
    sent: list[tuple[str, str, dict[str, Any]]] = []

    def receiver(signal: Any, sender: Any, instance: Any, **kwargs: Any) -> None:
        if sender is DBTaskResult:
            sent.append(("pre" if signal is pre_save else "post",
                         instance.args_kwargs["args"][0], kwargs))

    pre_save.connect(receiver)
    post_save.connect(receiver)
    try:
        value = {"run_id": 7, "outcome": "waiting", "nested": [1.5, None, "é"]}
        library.set_successful(value)
        w._one_statement_claim.succeeded(ours, value)
    finally:
        pre_save.disconnect(receiver)
        post_save.disconnect(receiver)
    assert [(when, kwargs) for when, name, kwargs in sent if name == "b"] == [
        (when, kwargs) for when, name, kwargs in sent if name == "a"]
    assert [when for when, _, _ in sent] == ["pre", "post", "pre", "post"]
    skip = {"id", "args_kwargs", "enqueued_at", "started_at", "finished_at"}
    for instance in (library, ours):
        stored = DBTaskResult.objects.get(pk=instance.pk)
        assert stored.finished_at == instance.finished_at and stored.finished_at is not None
        for field in DBTaskResult._meta.concrete_fields:
            if field.name not in skip:
                assert getattr(ours, field.attname) == getattr(library, field.attname)
                assert getattr(stored, field.attname) == getattr(instance, field.attname)
    assert DBTaskResult.objects.get(pk=ours.pk).return_value == value


def test_a_success_that_updates_no_row_fails_as_save_does() -> None:
    from django.db import DatabaseError

    row("a")
    w = worker()
    task, _ = w._claim_next()
    DBTaskResult.objects.filter(pk=task.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        w._one_statement_claim.succeeded(task, None)


# --- a run execution's task success, recorded with the run's end (taskclaim.holding) ---


def executed_by_worker(tmp_path: Any, receiver: Any = None) -> tuple[Any, Any, list[str]]:
    """A run from start to end executed as `stepwise_worker` executes it (its claim of the
    run's task row, then `run_task`): the run, its task row and the statements sent (the
    checkpoint saver's own connection not counted). `receiver` is connected to
    `run_finished` meanwhile (it runs inside the transaction that ends the run)."""
    from orchestration.runtime.models import Run
    from orchestration.runtime.runs import start_thread
    from orchestration.runtime.signals import run_finished

    queued = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(tmp_path)},
                          user=None)
    w = worker()
    task, _ = w._claim_next()
    assert task.args_kwargs["args"] == [queued.pk]
    if receiver is not None:
        run_finished.connect(receiver)
    try:
        with CaptureQueriesContext(connection) as queries:
            w.run_task(task)
    finally:
        if receiver is not None:
            run_finished.disconnect(receiver)
    return (Run.objects.select_related("thread").get(pk=queued.pk),
            DBTaskResult.objects.get(pk=task.pk), [q["sql"] for q in queries])


def test_a_run_and_its_task_row_succeed_in_one_commit(
    tmp_path: Any,
) -> None:
    """The task row's success is written by the statement that ends the run, in the same
    transaction (the `run_finished` receivers, inside it, already see it), with the run's
    end time: no separate success statement, no commit between the two."""
    seen: list[tuple[str, str]] = []

    def receiver(sender: Any, run: Any, **kwargs: Any) -> None:
        # this transaction's view, and another session's (what a crash now would leave)
        mine = DBTaskResult.objects.get(pk=run.task_result_id).status
        other = connection.get_new_connection(connection.get_connection_params())
        sql = "SELECT status FROM django_tasks_database_dbtaskresult WHERE id = %s"
        key: Any = run.task_result_id
        if connection.vendor == "sqlite":  # SQLite's own connection (WAL: a reader's view)
            sql, key = sql.replace("%s", "?"), uuid.UUID(str(key)).hex
        try:
            theirs = other.execute(sql, [key]).fetchone()[0]
        finally:
            other.close()
        seen.append((mine, theirs))

    run, task, statements = executed_by_worker(tmp_path, receiver)
    assert seen == [("SUCCESSFUL", "RUNNING")]
    assert (run.status, run.thread.status, task.status) == ("succeeded", "done", "SUCCESSFUL")
    assert task.return_value == {"run_id": run.pk, "outcome": "succeeded"}
    assert task.finished_at == run.finished_at
    assert (task.exception_class_path, task.traceback) == ("", "")
    ends = [sql for sql in statements if "orchestration_run SET status" in sql
            and "finished_at" in sql]
    if connection.vendor == "postgresql":
        assert len(ends) == 1 and "django_tasks_database_dbtaskresult" in ends[0], ends
        assert not [sql for sql in statements if sql.startswith(
            'UPDATE "django_tasks_database_dbtaskresult" SET "status"')], statements
    else:  # the run's end, then in its transaction the thread, the event, the task row
        assert len(ends) == 1, ends
        at = statements.index(ends[0])
        assert "orchestration_thread SET" in statements[at + 1]
        assert "INSERT INTO orchestration_event" in statements[at + 2]
        assert statements[at + 3].startswith(
            'UPDATE "django_tasks_database_dbtaskresult" SET "status"'), statements
        # and no success statement of the worker's own after it
        assert not [sql for sql in statements[at + 4:]
                    if sql.startswith("UPDATE") and "dbtaskresult" in sql], statements



def test_a_lost_lease_records_neither_the_run_end_nor_the_task_success(
    tmp_path: Any,
) -> None:
    """A worker whose lease was taken ends nothing: the run stays with its new owner, and
    the task row is not recorded with the run's end (the worker records its own outcome)."""
    from orchestration.runtime.errors import LeaseLost
    from orchestration.runtime.models import Run, Thread
    from orchestration.runtime.runs import start_thread
    from orchestration.runtime.taskclaim import holding, recorded_with_run_end
    from orchestration.runtime.tasks import _claim, _finish

    queued = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    w = worker()
    task, _ = w._claim_next()
    lease, run = _claim(queued.pk)
    Run.objects.filter(pk=run.pk).update(lease_token="someone-else")
    result = {"run_id": run.pk, "outcome": "succeeded"}
    with holding(w._one_statement_claim, task), pytest.raises(LeaseLost):
        _finish(run, lease, Run.Status.SUCCEEDED, Thread.Status.DONE, "",
                send=lambda r: None, result=result)
    assert not recorded_with_run_end(task, result)
    stored = DBTaskResult.objects.get(pk=task.pk)
    assert (stored.status, stored.finished_at, stored.return_value) == ("RUNNING", None, None)
    assert Run.objects.get(pk=run.pk).status == "running"


def test_a_run_end_rolled_back_leaves_its_task_row_running(
    tmp_path: Any,
) -> None:
    """A receiver failing inside the run end's transaction rolls the task row's success back
    with it (the worker then records the task's outcome itself, as before)."""
    from orchestration.runtime.models import Run, Thread
    from orchestration.runtime.runs import start_thread
    from orchestration.runtime.taskclaim import holding, recorded_with_run_end
    from orchestration.runtime.tasks import _claim, _finish

    queued = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    w = worker()
    task, _ = w._claim_next()
    lease, run = _claim(queued.pk)
    result = {"run_id": run.pk, "outcome": "succeeded"}

    def fail(r: Any) -> None:
        raise RuntimeError("a receiver failed")

    with holding(w._one_statement_claim, task), pytest.raises(RuntimeError):
        _finish(run, lease, Run.Status.SUCCEEDED, Thread.Status.DONE, "", send=fail,
                result=result)
    assert not recorded_with_run_end(task, result)
    assert DBTaskResult.objects.get(pk=task.pk).status == "RUNNING"
    assert Run.objects.get(pk=run.pk).status == "running"


# --- the run a task names, taken by the worker's claim of the task (taskclaim.claimed_run) ---


def test_claiming_a_runs_task_takes_the_run_in_the_same_statement_or_transaction(
    tmp_path: Any,
) -> None:
    """The claim of an `execute_run` row takes its run (run, thread, `run_started`) in the
    same statement and commit; the task's execution then sends no claim of its own."""
    from orchestration.runtime.leases import worker_id
    from orchestration.runtime.models import Event, Run
    from orchestration.runtime.runs import start_thread

    queued = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(tmp_path)},
                          user=None)
    w = worker()
    with CaptureQueriesContext(connection) as queries:
        task, _ = w._claim_next()
    if connection.vendor == "postgresql":
        assert len(queries) == 1, [q["sql"] for q in queries]
    else:  # SQLite: the task row's, the run's and thread's updates, the event: one commit
        assert [q["sql"].split()[0] for q in queries] == [
            "BEGIN", "UPDATE", "UPDATE", "UPDATE", "INSERT", "COMMIT"], [q["sql"] for q in queries]
    assert task.args_kwargs["args"] == [queued.pk] and task.status == "RUNNING"
    run = Run.objects.select_related("thread").get(pk=queued.pk)
    assert (run.status, run.attempts, run.worker, run.thread.status) == (
        "running", 1, worker_id(), "running")
    assert Event.objects.get(run=run, kind="run_started").data == {
        "attempt": 1, "worker": worker_id()}
    with CaptureQueriesContext(connection) as queries:
        w.run_task(task)
    assert not [q for q in queries if "status = 'running', lease_token" in q["sql"]]
    run = Run.objects.get(pk=queued.pk)
    assert (run.status, run.attempts, run.lease_token) == ("succeeded", 1, "")
    assert DBTaskResult.objects.get(pk=task.pk).return_value == {
        "run_id": run.pk, "outcome": "succeeded"}
    assert Event.objects.filter(run=run, kind="run_started").count() == 1


def test_a_runs_task_whose_run_is_taken_is_claimed_and_skips_it(
    tmp_path: Any,
) -> None:
    """A second task for a run another worker holds: the row is claimed, the run left as it
    is (no second `run_started`), and the execution says so without trying again."""
    from orchestration.runtime.models import Event, Run
    from orchestration.runtime.runs import start_thread
    from orchestration.runtime.tasks import _claim, execute_run

    queued = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    lease, _ = _claim(queued.pk)  # another worker's
    assert lease is not None
    DBTaskResult.objects.all().delete()
    execute_run.enqueue(queued.pk)
    w = worker()
    task, _ = w._claim_next()
    assert task.status == "RUNNING"
    with CaptureQueriesContext(connection) as queries:
        w.run_task(task)
    assert not [q for q in queries if "status = 'running', lease_token" in q["sql"]]
    assert DBTaskResult.objects.get(pk=task.pk).return_value == {
        "run_id": queued.pk, "outcome": "skipped", "status": "running"}
    assert Run.objects.get(pk=queued.pk).lease_token == lease.token
    assert Event.objects.filter(run_id=queued.pk, kind="run_started").count() == 1


def test_other_tasks_arguments_are_never_taken_for_a_run(
    tmp_path: Any,
) -> None:
    """Only an `execute_run(<integer>)` row takes a run: another task whose first argument
    is a run's id, or a run's task with an argument that is no id, takes nothing (and the
    latter is claimed, not an error of the claim's statement)."""
    from orchestration.runtime.leases import EXECUTE_RUN_PATH
    from orchestration.runtime.models import Run
    from orchestration.runtime.runs import start_thread

    queued = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    DBTaskResult.objects.all().delete()
    DBTaskResult.objects.create(args_kwargs={"args": [queued.pk], "kwargs": {}},
                                task_path=PATH, queue_name="default", backend_name="default",
                                status="READY", run_after=get_date_max())
    for args in (["x"], [1.5], [queued.pk, 2], [], [10**20], [-queued.pk]):
        DBTaskResult.objects.create(args_kwargs={"args": args, "kwargs": {}},
                                    task_path=EXECUTE_RUN_PATH, queue_name="default",
                                    backend_name="default", status="READY",
                                    run_after=get_date_max())
    w = worker()
    claimed = [w._claim_next()[0] for _ in range(7)]
    assert all(task is not None for task in claimed)
    assert w._claim_next()[0] is None
    assert Run.objects.get(pk=queued.pk).status == "queued"


def test_on_postgresql_a_claim_says_whether_another_row_was_ready() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement claim is PostgreSQL's")
    row("a", age=2)
    row("b", age=1)
    row("not-due-yet", run_after=timezone.now() + timedelta(hours=1))
    row("other-queue", queue="mail")
    w = worker()
    claim = w._one_statement_claim
    assert w._claim_next()[0].args_kwargs["args"] == ["a"] and claim.more is True
    # the row it claimed itself, a row not due and another queue's do not count
    assert w._claim_next()[0].args_kwargs["args"] == ["b"] and claim.more is False
    assert w._claim_next()[0] is None and claim.more is True  # nothing known: look again


@pytest.fixture
def waiting_worker() -> Any:
    """A worker that claims one task at a time and waits with a `Waiter` (closed after)."""
    w = worker()
    w.batch = False
    w.waiter = Waiter()
    yield w
    w.waiter.close()


def test_a_listening_worker_waits_when_none_was_ready_and_is_woken_at_once(
    waiting_worker: Any,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    w = waiting_worker
    row("a")
    row("b")
    time.sleep(0.2)  # both notifications delivered
    assert w.waiter.wait(5)
    assert w._claim_next()[0].args_kwargs["args"] == ["a"]
    assert w._more_may_be_ready()  # "b" was ready: claim again without waiting
    assert w._claim_next()[0].args_kwargs["args"] == ["b"]
    assert not w._more_may_be_ready()  # nothing else was: wait instead of an empty claim
    # the two piled-up notifications woke one wait, not two
    assert not w.waiter.wait(0.2)
    row("c")  # enqueued while "b" runs: its notification ends the wait at once
    started = time.monotonic()
    assert w.waiter.wait(5)
    assert time.monotonic() - started < 1
    assert w._claim_next()[0].args_kwargs["args"] == ["c"]


def test_a_polling_worker_claims_again_after_every_task(waiting_worker: Any) -> None:
    w = waiting_worker
    w.waiter.close()  # polling: no notification would announce a task
    row("a")
    assert w._claim_next()[0] is not None
    assert w._more_may_be_ready()


def _writer_pid() -> int:
    """The PostgreSQL backend of this thread's checkpoint writer (opened if need be)."""
    def connect() -> Any:
        import psycopg

        return psycopg.connect(**connection.get_connection_params(), autocommit=True)

    writer = writer_for("default", connect)
    writer.submit(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone()[0], None)
    return writer.wait()


def test_a_listening_worker_keeps_its_writer_for_a_task_announced_just_after(
    waiting_worker: Any,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    w = waiting_worker
    try:
        first = _writer_pid()
        w.task_ended = time.monotonic()
        row("next")  # announced within the grace: the wait ends with the writer open
        w._wait()
        assert _writer_pid() == first
        w.task_ended -= WRITER_GRACE_SECONDS
        w._wait()  # long idle (nothing announced): the writer's connection is closed
        assert _writer_pid() != first
    finally:
        close_writers()
