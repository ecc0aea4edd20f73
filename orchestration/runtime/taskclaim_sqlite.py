"""A task worker's claim of its next task row on SQLite: one write transaction with its run.

django-tasks-db claims in a transaction of its own (`BEGIN EXCLUSIVE`; the ORM's SELECT of
the first ready row; `save()` of its RUNNING status, start time and worker id; COMMIT), and
the run the row names was then taken in a second one (`leases.claim`, the run and thread read
back, `run_started`: five ORM statements compiled on every run execution). Together they were
a third of the SQLite worker's CPU per run and two passes through the write gate. Here
(`SqliteTaskClaim.next`) one `BEGIN IMMEDIATE ... COMMIT` holds:

- `UPDATE ... WHERE id = (SELECT id ... LIMIT 1) RETURNING`: the same row the library's claim
  takes (`DBTaskResultQuerySet.ready`, the worker's backend and queues, the model's order:
  priority, then `run_after`, then `enqueued_at`), changed as `DBTaskResult.claim` changes it
  (status, `started_at`, the worker id appended to `worker_ids`), returned as the ORM's
  instance (`rowread`). SQLite's write lock, taken at BEGIN, is what keeps two workers off
  one row, as it was for the library's exclusive transaction;
- if the row is an `execute_run(<id>)`, that run taken by `runclaim.claim_run_sqlite` (the
  fenced update, its thread, `run_started`), for `tasks._claim` (`taskclaim.claimed_run`),
  exactly as PostgreSQL's one-statement claim does.

A task that returns is recorded by `succeeded` (what `set_successful` writes, by a statement
built once), and a run execution's success by the transaction that ends its run
(`runend.end_run`, `taskclaim.RunTaskSuccess`): one commit for both, and none in between for
a crash to split.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max
from django_tasks_db.utils import retry

from orchestration.runtime import rowread
from orchestration.runtime.leases import EXECUTE_RUN_PATH, lease_seconds
from orchestration.runtime.runclaim import claim_run_sqlite, sqlite_params, taken_sqlite
from orchestration.runtime.taskclaim import (
    SUCCESS,
    RunTaskSuccess,
    _in_hand,
    _saved,
    _success_params,
    success_update,
)

__all__ = ["SqliteTaskClaim", "run_id_of"]


class SqliteTaskClaim:
    """The claim statement of one worker on SQLite: its backend, queues and id are fixed."""

    def __init__(
        self,
        *,
        using: str,
        backend_name: str,
        worker_id: str,
        queue_names: list[str] | None,
        excluded_queue_names: list[str],
    ) -> None:
        self.using = using
        self.worker_id = worker_id
        meta = DBTaskResult._meta
        quote = connections[using].ops.quote_name
        table = quote(meta.db_table)
        where = ["status = 'READY'", "(run_after = %(date_max)s OR run_after <= %(now)s)",
                 "backend_name = %(backend)s"]
        self.fixed: dict[str, object] = {"backend": backend_name, "worker": worker_id}
        if queue_names is not None:  # None: every queue ("*")
            names = [f"q{i}" for i in range(len(queue_names))]
            where.append(f"queue_name IN ({', '.join(f'%({n})s' for n in names)})")
            self.fixed.update(zip(names, queue_names, strict=True))
        if excluded_queue_names:
            names = [f"x{i}" for i in range(len(excluded_queue_names))]
            where.append(f"queue_name NOT IN ({', '.join(f'%({n})s' for n in names)})")
            self.fixed.update(zip(names, excluded_queue_names, strict=True))
        self.claim = (
            f"UPDATE {table} SET status = 'RUNNING', started_at = %(now)s, "  # noqa: S608 - names from the model
            "worker_ids = json_insert(worker_ids, '$[#]', %(worker)s) "
            f"WHERE id = (SELECT id FROM {table} WHERE {' AND '.join(where)} "
            "ORDER BY priority DESC, run_after ASC, enqueued_at ASC LIMIT 1) "
            f"RETURNING {rowread.columns(DBTaskResult, using)}"
        )
        self.success_fields = [field for field in meta.concrete_fields if field.name in SUCCESS]
        update, _ = success_update(self.success_fields, table, quote, "")
        self.success = f"{update} RETURNING id"
        # for the transaction that ends the task's run (`RunTaskSuccess`; no types on SQLite)
        self.run_end_success = success_update(self.success_fields, table, quote,
                                              RunTaskSuccess.PREFIX)[0], {}
        # whether another row may be ready: not known here, so the worker claims again
        self.more = True
        names = [field.attname for field in meta.concrete_fields]
        self.path_at, self.args_at = names.index("task_path"), names.index("args_kwargs")

    def next(self) -> DBTaskResult | None:
        """Claim the next ready task for this worker, or None if there is none. A run's
        execution comes with its run taken (or found not to be takeable) in the same
        transaction, for `tasks._claim` (`claimed_run`)."""
        connection = connections[self.using]
        adapt = connection.ops.adapt_datetimefield_value
        # Everything but the statements is done outside the transaction: SQLite's write
        # lock (and the gate every other writer queues on) is held from BEGIN to COMMIT.
        params = {"now": adapt(timezone.now()), "date_max": adapt(get_date_max()),
                  **self.fixed}
        token, seconds = uuid.uuid4().hex, lease_seconds()
        _in_hand.run = None
        taken: Any = None
        with transaction.atomic(using=self.using), connection.cursor() as cursor:
            cursor.execute(self.claim, params)
            values = cursor.fetchone()
            if values is None:
                return None
            run_id = run_id_of(values[self.path_at], json.loads(values[self.args_at]))
            if run_id is not None:
                taken = claim_run_sqlite(cursor, sqlite_params(run_id, token, seconds))
        # committed: the row, and the run if it was takeable, are this worker's
        row: DBTaskResult = rowread.instance(  # type: ignore[assignment]
            DBTaskResult, values, using=self.using)
        if run_id is not None:
            _in_hand.run = (row.args_kwargs["args"],
                            None if taken is None else taken_sqlite(taken, token, seconds))
        return row

    def succeeded(self, row: DBTaskResult, return_value: Any) -> None:
        """`row.set_successful(return_value)`: the same fields set on `row` and written, the
        same signals, retried as the library retries it."""
        _succeeded(self, row, return_value)


def run_id_of(task_path: str, args_kwargs: Any) -> int | None:
    """The run an `execute_run(<id>)` row names; None for any other task or arguments (what
    PostgreSQL's claim statement checks: one integer argument of at most 18 digits, so that
    no argument fails the claim's own statement and leaves its row to be claimed again)."""
    if task_path != EXECUTE_RUN_PATH or not isinstance(args_kwargs, dict):
        return None
    args = args_kwargs.get("args")
    if isinstance(args, list) and len(args) == 1 and type(args[0]) is int \
            and 0 <= args[0] < 10**18:
        return args[0]
    return None


@retry()  # as set_successful
def _succeeded(claim: SqliteTaskClaim, row: DBTaskResult, return_value: Any) -> None:
    params = _success_params(claim, row, return_value, timezone.now(), "")  # type: ignore[arg-type]
    with connections[claim.using].cursor() as cursor:
        cursor.execute(claim.success, params)
        if cursor.fetchone() is None:
            raise DatabaseError("Save with update_fields did not affect any rows.")  # as save()
    _saved(claim, row)  # type: ignore[arg-type]
