"""A task worker's claim of its next task row on PostgreSQL: one statement.

django-tasks-db claims in a transaction of four round trips (BEGIN; the ORM's
`SELECT ... FOR UPDATE SKIP LOCKED` of the first ready row; `save()` of its RUNNING status,
start time and worker id; COMMIT), each ORM statement compiled afresh. A worker claims once
per task plus once more when it goes idle (three tasks per review cycle): the claim was a
sixth of a worker's CPU per cycle. Here the same choice and the same change are one
`UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING` in autocommit, whose
text is built once per worker and sent as a typed, prepared `pgstatement.PgStatement`:

- the same rows are ready (`DBTaskResultQuerySet.ready`: READY, and no `run_after` or one
  that has passed), of the worker's backend and queues, taken in the model's order
  (priority, then `run_after`, then `enqueued_at`: the partial index `tasks_db_new_ordering_idx`);
- SKIP LOCKED as `get_locked`: two workers never wait on, nor take, the same row. The row is
  locked by the subquery and changed by the UPDATE in one statement, so a claim is as atomic
  as the library's transaction (a worker dying mid-statement leaves the row READY);
- the row changes as `DBTaskResult.claim` changes it (status, `started_at`, the worker id
  appended to `worker_ids`), and comes back as a `DBTaskResult` with Django's field
  conversions, for the library's `run_task`: the converters a query of the ORM applies to
  these columns (JSON decoded), looked up once, and `Model.from_db` as `RawQuerySet` builds
  it (which looked up its columns, fields and converters again on every claim: most of a
  claim's CPU after the statement was fixed).

A task that returns is recorded the same way (`TaskClaim.succeeded`): what
`DBTaskResult.set_successful` writes and the signals its `save(update_fields=...)` sends, in
a statement built once instead of an UPDATE the ORM compiled for every task.

A run execution's success is not even a statement of its own: while the worker runs a task
(`holding`), the end of that task's run (`tasks._finish`, `runend.end_run`) writes the row's
success in its own statement and commit (`RunTaskSuccess`), so the run's end and its task's
success are one commit: no crash between the two can leave an ended run whose task row is
still RUNNING (the lost-task sweep would then mark it FAILED with `WorkerLost`), nor a
succeeded row whose run is RUNNING. The worker then skips its own success statement when
the task returned the value recorded so (one round trip and one commit per run execution).

Other databases (SQLite) keep the library's claim and its `set_successful`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections
from django.db.models.signals import post_save, pre_save
from django.tasks import TaskResultStatus
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max
from django_tasks_db.utils import retry

from orchestration.runtime import pgstatement, rowread, runclaim
from orchestration.runtime.leases import EXECUTE_RUN_PATH, Lease, lease_seconds
from orchestration.runtime.models import Run

__all__ = ["RunTaskSuccess", "TaskClaim", "claimed_run", "holding", "recorded_with_run_end",
           "run_task_success"]

# the fields `DBTaskResult.set_successful` saves
SUCCESS = ("status", "return_value", "finished_at", "exception_class_path", "traceback")
# PostgreSQL's type of each parameter (`pgstatement`): of the claim's, and by the field's
# kind of the success's
_CLAIM_TYPES = {"now": "timestamptz", "worker": "text", "date_max": "timestamptz",
                "backend": "text", "queues": "text[]", "excluded": "text[]"}
_TYPES = {"CharField": "text", "TextField": "text", "JSONField": "jsonb",
          "DateTimeField": "timestamptz"}


class TaskClaim:
    """The claim statement of one worker: its backend, queues and id are fixed."""

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
        meta = DBTaskResult._meta
        quote = connections[using].ops.quote_name
        table = quote(meta.db_table)
        columns = rowread.columns(DBTaskResult, using)
        where = ["status = 'READY'", "(run_after = %(date_max)s OR run_after <= %(now)s)",
                 "backend_name = %(backend)s"]
        self.fixed: dict[str, object] = {"backend": backend_name, "worker": worker_id}
        if queue_names is not None:  # None: every queue ("*")
            where.append("queue_name = ANY(%(queues)s)")
            self.fixed["queues"] = list(queue_names)
        if excluded_queue_names:
            where.append("NOT queue_name = ANY(%(excluded)s)")
            self.fixed["excluded"] = list(excluded_queue_names)
        self.worker_id = worker_id
        # `set_successful`'s update_fields, in the model's order as the ORM writes them
        self.success_fields = [field for field in meta.concrete_fields if field.name in SUCCESS]
        # names from the model, values as parameters; RETURNING says whether the row was there
        self.success_update, self.success_types = self._success_update(table, quote, "")
        self.success = pgstatement.fixed_statement(
            f"{self.success_update} RETURNING id", self.success_types
        )
        # the same, for the statement that ends the task's run (`RunTaskSuccess`)
        self.run_end_success = self._success_update(table, quote, RunTaskSuccess.PREFIX)
        # text results: the row's values as Django's cursor reads them, for `rowread`
        update = (
            f"UPDATE {table} SET status = 'RUNNING', started_at = %(now)s, "  # noqa: S608
            "worker_ids = worker_ids || jsonb_build_array(%(worker)s::text) "
            f"WHERE id = (SELECT id FROM {table} WHERE {' AND '.join(where)} "
            "ORDER BY priority DESC, run_after ASC, enqueued_at ASC "
            f"LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {columns}"
        )
        self.n_columns = len(meta.concrete_fields)
        # with the run the row names taken too (`runclaim.ctes`), if it is a run's execution
        # (`execute_run(<id>)`: CASE, so that no other task's arguments are cast)
        args = "k.args_kwargs->'args'"
        run_id = (f"(SELECT CASE WHEN k.task_path = %(run_path)s AND {args}->1 IS NULL "  # noqa: S608
                  f"AND jsonb_typeof({args}->0) = 'number' AND {args}->>0 ~ '^[0-9]{{1,18}}$' "
                  f"THEN ({args}->>0)::int8 END FROM k)")
        # and whether another row was ready (in the statement's snapshot, which still sees
        # the claimed row READY: hence `id <> k.id`), for the worker's next round (`more`)
        more = f"EXISTS (SELECT FROM {table} WHERE {' AND '.join(where)} AND id <> k.id)"  # noqa: S608
        self.claim = pgstatement.fixed_statement(
            f"WITH k AS ({update}), {runclaim.ctes(run_id)} "  # noqa: S608
            f"SELECT k.*, r.*, t.*, e.id, {more} "
            "FROM k LEFT JOIN (r CROSS JOIN t CROSS JOIN e) ON true",
            {**_CLAIM_TYPES, **runclaim._TYPES, "run_path": "text"}, text_results=True,
        )
        # False when the last claim found its row and no other ready one: a row committed
        # since is announced by a notification (`wakeup`) after that claim's snapshot
        self.more = True

    def _success_update(self, table: str, quote: Any, prefix: str
                        ) -> tuple[str, dict[str, str]]:
        return success_update(self.success_fields, table, quote, prefix)

    def next(self) -> DBTaskResult | None:
        """Claim the next ready task for this worker, or None if there is none. A run's
        execution comes with its run taken (or found not to be takeable) by the same
        statement, for `tasks._claim` (`claimed_run`)."""
        token, seconds = uuid.uuid4().hex, lease_seconds()
        params = {**runclaim.params(token, seconds), "date_max": get_date_max(),
                  "run_path": EXECUTE_RUN_PATH, **self.fixed}
        values = pgstatement.one(connections[self.using], self.claim, params)
        _in_hand.run = None
        self.more = True
        if values is None:
            return None
        self.more = values[-1]
        values = values[:-1]
        row: DBTaskResult = rowread.instance(  # type: ignore[assignment]
            DBTaskResult, values[:self.n_columns], using=self.using)
        if row.task_path == EXECUTE_RUN_PATH:
            run = values[self.n_columns:]
            taken = None if run[0] is None else runclaim.taken(run, token, seconds)
            _in_hand.run = (row.args_kwargs["args"], taken)
        return row

    def succeeded(self, row: DBTaskResult, return_value: Any) -> None:
        """`row.set_successful(return_value)`: the same fields set on `row` and written, the
        same signals, retried as the library retries it."""
        _succeeded(self, row, return_value)


def success_update(fields: list[Any], table: str, quote: Any, prefix: str
                   ) -> tuple[str, dict[str, str]]:
    """The success's UPDATE of `fields` (no RETURNING) and its parameters' PostgreSQL types,
    the parameters' names prefixed with `prefix` (to sit in another statement: `runend`)."""
    sets = ", ".join(f"{quote(field.column)} = %({prefix}{field.name})s" for field in fields)
    types = {f"{prefix}{field.name}": _TYPES[field.get_internal_type()] for field in fields}
    return (f"UPDATE {table} SET {sets} WHERE id = %({prefix}id)s",  # noqa: S608
            {**types, f"{prefix}id": "uuid"})


@retry()  # as set_successful
def _succeeded(claim: TaskClaim, row: DBTaskResult, return_value: Any) -> None:
    params = _success_params(claim, row, return_value, timezone.now(), "")
    if pgstatement.one(connections[claim.using], claim.success, params) is None:
        raise DatabaseError("Save with update_fields did not affect any rows.")  # as save()
    _saved(claim, row)


def _success_params(claim: TaskClaim, row: DBTaskResult, return_value: Any, now: Any,
                    prefix: str) -> dict[str, Any]:
    """`set_successful`'s changes made to `row` and its `pre_save` sent (as `Model.save`
    sends it, before the write); the success statement's parameters."""
    row.status = TaskResultStatus.SUCCESSFUL
    row.finished_at = now
    row.return_value = return_value
    row.exception_class_path = ""
    row.traceback = ""
    connection = connections[claim.using]
    pre_save.send(sender=DBTaskResult, instance=row, raw=False, using=claim.using,
                  update_fields=frozenset(SUCCESS))
    params = {f"{prefix}{field.name}": field.get_db_prep_save(field.pre_save(row, False),
                                                              connection)
              for field in claim.success_fields}
    params[f"{prefix}id"] = DBTaskResult._meta.pk.get_db_prep_value(row.pk, connection)
    return params


def _saved(claim: TaskClaim, row: DBTaskResult) -> None:
    post_save.send(sender=DBTaskResult, instance=row, created=False,
                   update_fields=frozenset(SUCCESS), raw=False, using=claim.using)


class _InHand(threading.local):
    """The task row this thread's worker is running (`holding`); and the row whose success
    its run's end recorded, with the return value recorded (kept after `holding`, for the
    worker's check)."""

    claim: TaskClaim | None = None
    row: DBTaskResult | None = None
    recorded: DBTaskResult | None = None
    value: Any = None
    # the run the last claimed row names: its args, and the run taken with it (None: the
    # run was not takeable); None until a run's execution is claimed
    run: tuple[Any, tuple[Lease, Run] | None] | None = None


_in_hand = _InHand()


@contextmanager
def holding(claim: TaskClaim, row: DBTaskResult) -> Iterator[None]:
    """While the worker runs `row`'s task: the end of its run may record its success."""
    _in_hand.claim, _in_hand.row, _in_hand.recorded, _in_hand.value = claim, row, None, None
    try:
        yield
    finally:
        _in_hand.claim = _in_hand.row = _in_hand.run = None


def claimed_run(run_id: int) -> tuple[bool, tuple[Lease, Run] | None]:
    """(True, what the task claim took) if the claim of the task row in hand tried to take
    run `run_id` (None: it was not takeable), once; (False, None) if it did not try."""
    found, _in_hand.run = _in_hand.run, None
    if found is None or found[0] != [run_id]:
        return False, None
    return True, found[1]


def recorded_with_run_end(row: DBTaskResult, return_value: Any) -> bool:
    """Whether `row`'s success, with exactly `return_value`, was committed with its run's
    end (then the worker writes nothing more; a task that returned anything else, such as
    a lease lost after the end, is recorded by the worker's own statement as usual)."""
    return _in_hand.recorded is row and _in_hand.value == return_value


def run_task_success(run_id: int, using: str) -> RunTaskSuccess | None:
    """The success of the task row in hand, if it is the execution of run `run_id` on
    `using`'s PostgreSQL (the one-statement claim) and not recorded yet; else None."""
    claim, row = _in_hand.claim, _in_hand.row
    if claim is None or row is None or _in_hand.recorded is not None or claim.using != using:
        return None
    args = row.args_kwargs.get("args") if isinstance(row.args_kwargs, dict) else None
    if row.task_path != EXECUTE_RUN_PATH or args != [run_id]:
        return None
    return RunTaskSuccess(claim, row)


class RunTaskSuccess:
    """A run execution's task success, written by the statement that ends its run
    (`runend.end_run`): `sql` is the row's update (a CTE there) and `types` its parameters'."""

    PREFIX = "task_"

    def __init__(self, claim: TaskClaim, row: DBTaskResult) -> None:
        self.claim = claim
        self.row = row
        self.value: Any = None
        self.written = False  # by `end_run`: the row was there
        self.sql, self.types = claim.run_end_success

    def params(self, return_value: Any, now: Any) -> dict[str, Any]:
        """`set_successful(return_value)` on the row in hand (at `now`, the run's end):
        the statement's parameters; `committed` once they are."""
        self.value = return_value
        return _success_params(self.claim, self.row, return_value, now, self.PREFIX)

    def committed(self) -> None:
        """The run's end and this success committed: the worker need not write it."""
        if self.written:
            _in_hand.recorded, _in_hand.value = self.row, self.value
            _saved(self.claim, self.row)
