"""A run's `execute_run` task row, written by one fixed statement instead of the Tasks API.

With django-tasks-db, queueing a run's task took three round trips inside the queueing
transaction: `execute_run.enqueue` (the ORM's insert of a `DBTaskResult`, compiled on every
call), the `pg_notify` of its `post_save` receiver (`wakeup.notify_task_saved`), and the
run's `task_result_id` set to the new row (`runqueue.set_task_result`). A decision and a
start each queue a run, so a review cycle paid six. Here, on PostgreSQL, one statement
does all three: the task row (the very values the backend's `enqueue` would insert, from an
unsaved `DBTaskResult` built as it builds one, its `pre_save` receiver applied), the run
pointed at it, and the notification, which joins the transaction like the receiver's did
(delivered at commit, never before the row is visible, never for a rolled-back enqueue).
Elsewhere the same two writes as fixed statements; on SQLite the workers are woken by a
datagram once the transaction commits (`wakeup.wake_on_commit`).

Only for the database backend, whose rows are ours to write (the task claim reads them by
SQL too: `taskclaim`); any other backend gets `enqueue` and the run's pointer as before
(`enqueue_run` chooses).
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Any

from django.db import connection
from django_tasks_db.models import DBTaskResult, get_date_max

from orchestration.runtime import runqueue
from orchestration.runtime.models import Run
from orchestration.runtime.wakeup import CHANNEL, wake_on_commit

__all__ = ["RunTask", "enqueue_run", "insert_task", "new_run_task"]

# django.tasks logs every enqueue here (its `task_enqueued` receiver): kept, same words
_tasks_log = logging.getLogger("django.tasks")


def _fields() -> list[Any]:
    return list(DBTaskResult._meta.concrete_fields)


@functools.cache
def _insert_sql() -> str:
    q = connection.ops.quote_name
    fields = _fields()
    values = ", ".join(["%s"] * len(fields))
    return (f"INSERT INTO {q(DBTaskResult._meta.db_table)} "  # noqa: S608 - model names
            f"({', '.join(q(f.column) for f in fields)}) VALUES ({values})")


@functools.cache
def _sql(vendor: str) -> tuple[str, ...]:
    insert = _insert_sql()
    run = connection.ops.quote_name(Run._meta.db_table)
    update = f"UPDATE {run} SET task_result_id = %s WHERE id = %s"  # noqa: S608 - model names
    if vendor == "postgresql":
        return (f"WITH k AS ({insert} RETURNING id), u AS ({update}) "  # noqa: S608
                "SELECT pg_notify(%s, %s) FROM k",)
    return insert, update


def _row(task: Any, backend: Any, task_id: uuid.UUID, run_id: int | None) -> DBTaskResult:
    row = DBTaskResult(
        id=task_id,
        # what `normalize_json({"args": (run_id,), "kwargs": {}})` gives
        args_kwargs={"args": [run_id], "kwargs": {}},
        priority=task.priority,
        task_path=task.module_path,
        queue_name=task.queue_name,
        run_after=task.run_after,
        backend_name=backend.alias,
    )
    if row.run_after is None:  # django_tasks_db's pre_save receiver: "no later than now"
        row.run_after = get_date_max()
    return row


def insert_task(task: Any, backend: Any, run_id: int) -> str | None:
    """Queue `task` (`execute_run`) for run `run_id` on the database `backend`, point the run
    at it and wake the listening workers, inside the caller's transaction; the task's id.
    None when the backend makes its ids in the database (an `id_function` expression): the
    caller then enqueues through the Tasks API."""
    task_id = backend._get_id()
    if not isinstance(task_id, uuid.UUID):
        return None
    backend.validate_task(task)  # as `enqueue` does: a task it cannot run is refused here
    row = _row(task, backend, task_id, run_id)
    params = [f.get_db_prep_save(f.pre_save(row, True), connection) for f in _fields()]
    result_id = str(task_id)  # the dashed form, as the Tasks API's result id gives it
    statements = _sql(connection.vendor)
    with connection.cursor() as cursor:
        if len(statements) == 1:
            cursor.execute(statements[0],
                           [*params, result_id, run_id, CHANNEL, row.queue_name])
        else:
            cursor.execute(statements[0], params)
            cursor.execute(statements[1], [result_id, run_id])
            if connection.vendor == "sqlite":
                wake_on_commit(connection.alias)  # SQLite's wake-up: a datagram, at commit
    _tasks_log.debug("Task id=%s path=%s enqueued backend=%s", result_id, row.task_path,
                     row.backend_name)
    return result_id


def enqueue_run(task: Any, run_id: int) -> str:
    """Queue `task` for run `run_id` and point the run at it: `insert_task` on the database
    backend, else the Tasks API's `enqueue` and an update of the run. The task's id."""
    from django_tasks_db import DatabaseBackend

    backend = task.get_backend()
    if isinstance(backend, DatabaseBackend):
        written = insert_task(task, backend, run_id)
        if written is not None:
            return written
    result_id = str(task.enqueue(run_id).id)[:64]
    runqueue.set_task_result(run_id, result_id)
    return result_id


# ------------------------------------------------- the task of a run not inserted yet


class RunTask:
    """The task row of a run about to be inserted, its id chosen first (`new_run_task`): the
    run is inserted pointing at it (`result_id` as its `task_result_id`), so no update of the
    new run's row follows; on PostgreSQL the run's own statement inserts it too (`cte`,
    `params`, `notify`: its CTE `r` gives the run's id), else `insert` after the run's."""

    def __init__(self, task: Any, backend: Any, task_id: uuid.UUID) -> None:
        backend.validate_task(task)  # as `enqueue` does: a task it cannot run is refused here
        self.row = _row(task, backend, task_id, None)
        self.result_id = str(task_id)  # the dashed form, as the Tasks API's result id gives it
        self.written = False

    @property
    def params(self) -> list[Any]:
        """The row's values but its `args_kwargs` (the run's id, read from `r`), then the
        notification's channel and payload."""
        return [f.get_db_prep_save(f.pre_save(self.row, True), connection)
                for f in _fields() if f.attname != "args_kwargs"] + [CHANNEL, self.row.queue_name]

    def insert(self, run_id: int) -> None:
        """The row by a statement of its own (not PostgreSQL), once the run is inserted."""
        self.row.args_kwargs = {"args": [run_id], "kwargs": {}}
        params = [f.get_db_prep_save(f.pre_save(self.row, True), connection) for f in _fields()]
        with connection.cursor() as cursor:
            cursor.execute(_insert_sql(), params)
            if connection.vendor == "postgresql":  # the receiver's notification, at commit
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, self.row.queue_name])
        if connection.vendor == "sqlite":
            wake_on_commit(connection.alias)  # SQLite's wake-up: a datagram, at commit
        self.inserted()

    def inserted(self) -> None:
        """The row is written (by `insert`, or by the run's statement on PostgreSQL)."""
        self.written = True
        _tasks_log.debug("Task id=%s path=%s enqueued backend=%s", self.result_id,
                         self.row.task_path, self.row.backend_name)


@functools.cache
def run_task_cte() -> tuple[str, str]:
    """PostgreSQL: the CTE inserting a `RunTask`'s row with the id of the run CTE `r` in its
    `args_kwargs` (as `normalize_json` writes it), and the final SELECT's column that sends
    the workers' notification (joining `k`: delivered at commit, as the receiver's was)."""
    q = connection.ops.quote_name
    fields = _fields()
    values = ", ".join(
        "jsonb_build_object('args', jsonb_build_array(r.id), 'kwargs', '{}'::jsonb)"
        if f.attname == "args_kwargs" else "%s" for f in fields)
    return (f"k AS (INSERT INTO {q(DBTaskResult._meta.db_table)} "  # noqa: S608 - model names
            f"({', '.join(q(f.column) for f in fields)}) SELECT {values} FROM r RETURNING id)",
            "pg_notify(%s, %s)")


def new_run_task(task: Any) -> RunTask | None:
    """The task row for a run about to be inserted, when the task's backend is the database
    backend with ids made here (else None: the caller enqueues after the insert)."""
    from django_tasks_db import DatabaseBackend

    backend = task.get_backend()
    if not isinstance(backend, DatabaseBackend):
        return None
    task_id = backend._get_id()
    if not isinstance(task_id, uuid.UUID):
        return None
    return RunTask(task, backend, task_id)
