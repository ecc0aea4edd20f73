"""Recording the end of a run attempt: on PostgreSQL in one statement instead of four, on
SQLite in three fixed ones (`_end_run_sqlite`: the fenced update returns the input).

`tasks._finish` ends an attempt in one transaction: the run's row changes under the lease
fence, the run's current input is read (answers may have arrived), the thread's row changes
and the `run_<status>` event is written. Portably (`_end_run_orm`, SQLite) those are four ORM
statements, each compiled on every run execution. On PostgreSQL they are one
data-modifying CTE (`_END`):

- the fenced update returns the run's input (`RETURNING`): the row is locked by that update,
  so the input it returns is the one `runs.answer_thread` (which locks the same row before
  adding answers) last committed, exactly what the separate read saw;
- the thread's update and the event's insert run only when the fenced update changed the
  run's row: a lost lease changes nothing.

- with `task` (a worker running the run's own task row: `taskclaim.RunTaskSuccess`), the
  task row's success too, only when the fenced update changed the run's row: the run's end
  and its task's success commit together, and a lost lease records neither.
- the reads other apps registered (`read_along`), answered by the same statement for the
  signal receivers that run next in its transaction (`read_with_run_end`): the webhooks'
  "is any endpoint active", asked on every run end and almost always answered no.

The statement is a typed, prepared `PgStatement` (no cursor, no per-call adaptation of its
parameters). Either way it runs inside the caller's transaction: the fence and the writes
commit together or not at all, and a pause whose answers arrived meanwhile is rolled back
whole by the caller.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.db import connection

from orchestration.runtime import pgstatement
from orchestration.runtime.events import announce, publish
from orchestration.runtime.leases import Lease
from orchestration.runtime.models import Event, Run, Thread

if TYPE_CHECKING:
    from orchestration.runtime.taskclaim import RunTaskSuccess

__all__ = ["along_sql", "end_run", "forget_reads", "read_along", "read_with_run_end",
           "reads_answered"]

# an empty head leaves the thread's head as it is
_END = (
    "WITH r AS (UPDATE orchestration_run SET status = %(status)s, finished_at = %(now)s, "
    "lease_token = '', lease_expires_at = NULL, error = %(error)s, traceback = %(traceback)s "
    "WHERE id = %(run_id)s AND lease_token = %(token)s AND status = 'running' "
    "RETURNING input), "
    "t AS (UPDATE orchestration_thread SET status = %(thread_status)s, updated_at = %(now)s, "
    "head_checkpoint_id = COALESCE(NULLIF(%(head)s, ''), head_checkpoint_id) "
    "WHERE id = %(thread_id)s AND EXISTS (SELECT 1 FROM r)), "
    "e AS (INSERT INTO orchestration_event (kind, thread_id, run_id, actor_id, reason, data, "
    "created_at) SELECT %(kind)s, %(thread_id)s, %(run_id)s, NULL, %(reason)s, "
    "%(data)s::jsonb, %(now)s FROM r RETURNING id)"
)
_SELECT = " SELECT r.input, e.id, NULL{along} FROM r, e"
# with the task row's success: its id back says the row was there (as `Model.save` checks)
_TASK = ", k AS ({update} AND EXISTS (SELECT 1 FROM r) RETURNING id)"
_SELECT_TASK = " SELECT r.input, e.id, (SELECT id FROM k){along} FROM r, e"
_TYPES = {
    "status": "text", "now": "timestamptz", "error": "text", "traceback": "text",
    "run_id": "int8", "token": "text", "thread_status": "text", "head": "text",
    "thread_id": "int8", "kind": "text", "reason": "text", "data": "text",
}


# name -> a fixed scalar SQL expression the run end's statement returns (`read_along`)
_ALONG: dict[str, str] = {}


class _Read(threading.local):
    values: dict[str, Any] | None = None
    block: Any = None  # the outermost atomic block of the transaction that read them


_read = _Read()


def read_along(name: str, expression: str) -> None:
    """Have every run end on PostgreSQL also return `expression` (a scalar SQL expression of
    fixed text, read in the statement's snapshot), for the receivers of the signal the run's
    end sends in the same transaction (`read_with_run_end`). Call it at startup (an app's
    `ready`): the statement's text is fixed once a run has ended."""
    _ALONG[name] = expression


def read_with_run_end(name: str) -> Any:
    """What `name`'s expression was at the run's end in this thread's current transaction;
    None if there is none (not inside `tasks._finish`'s transaction, not PostgreSQL, or
    `name` not registered): the caller reads for itself."""
    values = _read.values
    blocks = connection.atomic_blocks
    # an on_commit callback of that transaction runs after its block is gone: not in it
    if values is None or not blocks or blocks[0] is not _read.block:
        return None
    return values.get(name)


def forget_reads() -> None:
    """The transaction of the run's end is over (committed or rolled back): what its
    statement read is no longer this thread's to use."""
    _read.values = _read.block = None


def along_sql() -> str:
    """The registered reads as extra columns (", <expression>, ..."), for another statement
    that answers them for the receivers it makes run (`reads_answered`); fixed once the
    apps are ready, as the run end's own statement."""
    return "".join(f", {expression}" for expression in _ALONG.values())


@contextmanager
def reads_answered(values: Sequence[Any]) -> Iterator[None]:
    """Inside the block, `read_with_run_end` answers what a statement of the current
    transaction returned for `along_sql()`'s columns (`values`, in their order): for the
    receivers of a signal sent in the block (a decision's `post_save`); afterwards what it
    answered before (a run end's reads, if the block is inside its transaction)."""
    before = _read.values, _read.block
    _read.values = dict(zip(_ALONG, values, strict=True))
    _read.block = connection.atomic_blocks[0] if connection.atomic_blocks else None
    try:
        yield
    finally:
        _read.values, _read.block = before


def end_run(run: Run, lease: Lease, fields: dict[str, Any], thread_fields: dict[str, Any],
            kind: str, reason: str, data: dict[str, Any], *, want_input: bool,
            task: tuple[RunTaskSuccess, Any] | None = None) -> bool:
    """Under `lease`'s fence: the run's `fields`, the thread's `thread_fields` (status,
    `updated_at`, maybe its head) and the `kind` event. False if the lease is gone (nothing
    changed). With `want_input`, `run.input` is the row's current input afterwards (answers
    may have been added meanwhile; on PostgreSQL the statement returns it anyway); the caller
    sets the other fields on `run` and its thread. `task` (PostgreSQL, SQLite): the run's task
    row's success and its return value, written too (its `written` says whether the row was
    there); the caller calls its `committed()` once the transaction commits. The caller calls
    `forget_reads` once its transaction is over."""
    _read.values = _read.block = None
    if connection.vendor == "sqlite":
        return _end_run_sqlite(run, lease, fields, thread_fields, kind, reason, data, task)
    if connection.vendor != "postgresql":
        return _end_run_orm(run, lease, fields, thread_fields, kind, reason, data,
                            want_input=want_input)
    params = {"status": fields["status"], "now": fields["finished_at"], "error": fields["error"],
              "traceback": fields["traceback"], "run_id": run.pk, "token": lease.token,
              "thread_status": thread_fields["status"],
              "head": thread_fields.get("head_checkpoint_id", ""), "thread_id": run.thread_id,
              "kind": kind, "reason": reason, "data": json.dumps(data)}
    along = "".join(f", {expression}" for expression in _ALONG.values())
    if task is None:
        statement = pgstatement.fixed_statement(_END + _SELECT.format(along=along), _TYPES)
    else:
        success, value = task
        params.update(success.params(value, fields["finished_at"]))
        statement = pgstatement.fixed_statement(
            _END + _TASK.format(update=success.sql) + _SELECT_TASK.format(along=along),
            {**_TYPES, **success.types})
    row = pgstatement.one(connection, statement, params)
    if row is None:
        return False
    _read.values = dict(zip(_ALONG, row[3:], strict=True))
    _read.block = connection.atomic_blocks[0] if connection.atomic_blocks else None
    if task is not None:
        # no such task row: the run ends all the same, the worker's own success statement
        # then fails as `set_successful` would
        task[0].written = row[2] is not None
    run.input = bytes(row[0])
    announce(row[1], kind, thread=run.thread, run=run)
    return True


# SQLite: the run's fenced update returns its input (its row is this transaction's from the
# BEGIN IMMEDIATE on: SQLite's write lock), then the thread's update and the event's insert
# (and the task row's success), as statements of the caller's transaction built once.
_SQLITE_RUN = (
    "UPDATE orchestration_run SET status = %(status)s, finished_at = %(now)s, "
    "lease_token = '', lease_expires_at = NULL, error = %(error)s, traceback = %(traceback)s "
    "WHERE id = %(run_id)s AND lease_token = %(token)s AND status = 'running' "
    "RETURNING input"
)
_SQLITE_THREAD = (
    "UPDATE orchestration_thread SET status = %(thread_status)s, updated_at = %(now)s, "
    "head_checkpoint_id = COALESCE(NULLIF(%(head)s, ''), head_checkpoint_id) "
    "WHERE id = %(thread_id)s"
)
_SQLITE_EVENT = (
    "INSERT INTO orchestration_event (kind, thread_id, run_id, actor_id, reason, data, "
    "created_at) VALUES (%(kind)s, %(thread_id)s, %(run_id)s, NULL, %(reason)s, %(data)s, "
    "%(now)s) RETURNING id"
)


def _end_run_sqlite(run: Run, lease: Lease, fields: dict[str, Any],
                    thread_fields: dict[str, Any], kind: str, reason: str,
                    data: dict[str, Any], task: tuple[RunTaskSuccess, Any] | None) -> bool:
    """`end_run` on SQLite: three statements (four with the task row's success) instead of
    the ORM's four compiled on every run execution; `run.input` always read back."""
    ops = connection.ops
    now = fields["finished_at"]
    params = {"status": fields["status"], "now": ops.adapt_datetimefield_value(now),
              "error": fields["error"], "traceback": fields["traceback"], "run_id": run.pk,
              "token": lease.token, "thread_status": thread_fields["status"],
              "head": thread_fields.get("head_checkpoint_id", ""), "thread_id": run.thread_id,
              "kind": kind, "reason": reason,
              "data": Event._meta.get_field("data").get_db_prep_save(data, connection)}
    with connection.cursor() as cursor:
        cursor.execute(_SQLITE_RUN, params)
        row = cursor.fetchone()
        if row is None:
            return False
        cursor.execute(_SQLITE_THREAD, params)
        cursor.execute(_SQLITE_EVENT, params)
        event_id = cursor.fetchone()[0]
        if task is not None:
            success, value = task
            cursor.execute(f"{success.sql} RETURNING id", success.params(value, now))
            # no such task row: the run ends all the same, the worker's own success
            # statement then fails as `set_successful` would
            success.written = cursor.fetchone() is not None
    run.input = bytes(row[0])
    announce(event_id, kind, thread=run.thread, run=run)
    return True


def _end_run_orm(run: Run, lease: Lease, fields: dict[str, Any], thread_fields: dict[str, Any],
                 kind: str, reason: str, data: dict[str, Any], *, want_input: bool) -> bool:
    """`end_run` by the ORM's statements (any database)."""
    ended = Run.objects.filter(
        pk=run.pk, lease_token=lease.token, status=Run.Status.RUNNING
    ).update(**fields)
    if not ended:
        return False
    if want_input:
        run.input = Run.objects.values_list("input", flat=True).get(pk=run.pk)
    Thread.objects.filter(pk=run.thread_id).update(**thread_fields)
    publish(kind, run=run, reason=reason, data=data)
    return True
