"""A worker taking a run on PostgreSQL: the claim, the run's row and its `run_started`
event in one statement.

The portable path (`leases.claim`, then the run and its thread read back, then `publish`) is
a transaction of six round trips whose four ORM statements are compiled on every run
execution; two run executions per review cycle made it a tenth of a worker's CPU. Here the
same changes are one statement in autocommit, whose data-modifying parts commit together:

- the run's conditional update, exactly `leases.claim`'s (queued or stalled only, a fresh
  lease token, attempts + 1, `started_at` kept if set), returning the run's row;
- its thread marked running, returning the thread's row;
- the `run_started` event, with the attempt and the worker the update wrote.

A run another worker took (or that ended) matches no row: nothing changes, None comes back.
The rows come back as `Run` and `Thread` instances built straight from the values (none of
their fields needs a conversion from what psycopg returns), the event is pushed as
`publish` pushes it. The statement is sent as a typed, prepared `PgStatement`, with text
results as Django's cursor reads them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import cache

from django.db import connection
from django.utils import timezone

from orchestration.runtime import pgstatement, rowread
from orchestration.runtime.events import announce
from orchestration.runtime.leases import Lease, lease_seconds, worker_id
from orchestration.runtime.models import Event, Run, Thread

__all__ = ["claim_run", "claim_run_sqlite", "sqlite_params", "taken_sqlite"]


_TYPES = {"token": "text", "expires": "timestamptz", "now": "timestamptz",
          "run_worker": "text", "run_id": "int8"}


def ctes(run_id: str) -> str:
    """The claim's data-modifying CTEs `r` (the run), `t` (its thread) and `e` (the event)
    for the run whose id is the SQL expression `run_id`; parameters as `_TYPES` says (but
    `run_id`). `taskclaim` puts them after its task claim: the run its task names is taken
    by the same statement."""
    quote = connection.ops.quote_name
    run_table, thread_table = quote(Run._meta.db_table), quote(Thread._meta.db_table)
    run_columns = ", ".join(quote(f.column) for f in Run._meta.concrete_fields)
    thread_columns = ", ".join(
        f"{thread_table}.{quote(f.column)}" for f in Thread._meta.concrete_fields
    )
    return (
        f"r AS (UPDATE {run_table} SET status = 'running', lease_token = %(token)s, "  # noqa: S608 - names from the models
        "lease_expires_at = %(expires)s, heartbeat_at = %(now)s, worker = %(run_worker)s, "
        "attempts = attempts + 1, started_at = COALESCE(started_at, %(now)s) "
        f"WHERE id = {run_id} AND status IN ('queued', 'stalled') RETURNING {run_columns}), "
        f"t AS (UPDATE {thread_table} SET status = 'running', updated_at = %(now)s FROM r "
        f"WHERE {thread_table}.id = r.thread_id RETURNING {thread_columns}), "
        f"e AS (INSERT INTO {quote(Event._meta.db_table)} "
        "(kind, thread_id, run_id, actor_id, reason, data, created_at) "
        "SELECT 'run_started', r.thread_id, r.id, NULL, '', "
        "jsonb_build_object('attempt', r.attempts, 'worker', r.worker), %(now)s FROM r "
        "RETURNING id)"
    )


@cache
def _statement() -> pgstatement.PgStatement:
    return pgstatement.fixed_statement(
        f"WITH {ctes('%(run_id)s')} SELECT r.*, t.*, e.id FROM r, t, e",  # noqa: S608
        _TYPES,
        text_results=True,
    )


def params(token: str, seconds: float) -> dict[str, object]:
    """The claim's parameters (but `run_id`), for a lease of `seconds` under `token`."""
    now = timezone.now()
    return {"token": token, "expires": now + timedelta(seconds=seconds), "now": now,
            "run_worker": worker_id()}


def claim_run(run_id: int) -> tuple[Lease, Run] | None:
    """Take run `run_id` (PostgreSQL only), with its thread loaded, and record its start."""
    token, seconds = uuid.uuid4().hex, lease_seconds()
    row = pgstatement.one(connection, _statement(),
                          {**params(token, seconds), "run_id": run_id})
    return None if row is None else taken(row, token, seconds)


def taken(row: tuple[object, ...], token: str, seconds: float) -> tuple[Lease, Run]:
    """The run and its thread from the values `ctes` returned (`r.*, t.*, e.id`), its
    `run_started` event pushed once committed; the lease `token` holds it for `seconds`."""
    n_run = len(Run._meta.concrete_fields)
    n_thread = len(Thread._meta.concrete_fields)
    run = Run.from_db(connection.alias, None, row[:n_run])
    run.thread = Thread.from_db(connection.alias, None, row[n_run:n_run + n_thread])
    announce(row[n_run + n_thread], "run_started", thread=run.thread, run=run)
    return Lease(run_id=run.pk, token=token, seconds=seconds), run


# --- SQLite: the same changes as three statements of the caller's transaction ---------------
#
# SQLite has no data-modifying CTEs, but its UPDATE and INSERT return rows (3.35+): the run's
# conditional update returns the run, the thread's update returns the thread, the event's
# insert its id. What the portable path (`leases.claim`, a read back, `publish`) did in five
# ORM statements compiled on every run execution. The caller's transaction holds SQLite's
# write lock from its BEGIN IMMEDIATE, so no other writer sees or changes anything between
# the three; the worker's task claim (`taskclaim_sqlite`) runs them in its own transaction:
# the task row and its run are taken with one commit.


@cache
def _sqlite_statements() -> tuple[str, str, str]:
    quote = connection.ops.quote_name
    run_table, thread_table = quote(Run._meta.db_table), quote(Thread._meta.db_table)
    run_columns = ", ".join(quote(f.column) for f in Run._meta.concrete_fields)
    thread_columns = ", ".join(quote(f.column) for f in Thread._meta.concrete_fields)
    run = (f"UPDATE {run_table} SET status = 'running', lease_token = %(token)s, "  # noqa: S608 - names from the models
           "lease_expires_at = %(expires)s, heartbeat_at = %(now)s, worker = %(run_worker)s, "
           "attempts = attempts + 1, started_at = COALESCE(started_at, %(now)s) "
           f"WHERE id = %(run_id)s AND status IN ('queued', 'stalled') RETURNING {run_columns}")
    thread = (f"UPDATE {thread_table} SET status = 'running', updated_at = %(now)s "  # noqa: S608
              f"WHERE id = %(thread_id)s RETURNING {thread_columns}")
    event = (f"INSERT INTO {quote(Event._meta.db_table)} "  # noqa: S608
             "(kind, thread_id, run_id, actor_id, reason, data, created_at) "
             "VALUES ('run_started', %(thread_id)s, %(run_id)s, NULL, '', %(data)s, %(now)s) "
             "RETURNING id")
    return run, thread, event


def sqlite_params(run_id: int, token: str, seconds: float) -> dict[str, object]:
    """`claim_run_sqlite`'s parameters, built before its transaction begins (SQLite's write
    lock is held from BEGIN to COMMIT: what can be done outside it is)."""
    ops = connection.ops
    now = timezone.now()
    return {"token": token, "now": ops.adapt_datetimefield_value(now),
            "expires": ops.adapt_datetimefield_value(now + timedelta(seconds=seconds)),
            "run_worker": worker_id(), "run_id": run_id}


@cache
def _run_columns() -> tuple[int, int, int]:
    """Where the run's thread, attempts and worker are in its row (`Run`'s fields' order)."""
    names = [f.attname for f in Run._meta.concrete_fields]
    return names.index("thread_id"), names.index("attempts"), names.index("worker")


def claim_run_sqlite(cursor: object, params: dict[str, object]
                     ) -> tuple[tuple[object, ...], tuple[object, ...], int] | None:
    """Take the run `params` names (`sqlite_params`) on SQLite with `cursor` (Django's,
    inside the caller's write transaction) and write its `run_started` event: the run's
    and its thread's rows as stored, and the event's id, for `taken_sqlite` once the
    transaction has committed; None (nothing changed) if the run is not queued or stalled."""
    run_sql, thread_sql, event_sql = _sqlite_statements()
    cursor.execute(run_sql, params)  # type: ignore[attr-defined]
    run = cursor.fetchone()  # type: ignore[attr-defined]
    if run is None:
        return None
    thread_at, attempts_at, worker_at = _run_columns()
    # what `publish("run_started", data=...)` stores (the JSON field's own encoding)
    data = Event._meta.get_field("data").get_db_prep_save(
        {"attempt": run[attempts_at], "worker": run[worker_at]}, connection)
    cursor.execute(thread_sql, {**params, "thread_id": run[thread_at]})  # type: ignore[attr-defined]
    thread = cursor.fetchone()  # type: ignore[attr-defined]
    cursor.execute(event_sql, {**params, "thread_id": run[thread_at],  # type: ignore[attr-defined]
                               "data": data})
    return run, thread, cursor.fetchone()[0]  # type: ignore[attr-defined]


def taken_sqlite(rows: tuple[tuple[object, ...], tuple[object, ...], int], token: str,
                 seconds: float) -> tuple[Lease, Run]:
    """The run and its thread from `claim_run_sqlite`'s rows (the ORM's conversions), its
    `run_started` event pushed once committed; the lease `token` holds it for `seconds`."""
    run_values, thread_values, event_id = rows
    run: Run = rowread.instance(Run, run_values, using=connection.alias)  # type: ignore[assignment]
    run.thread = rowread.instance(  # type: ignore[assignment]
        Thread, thread_values, using=connection.alias)
    announce(event_id, "run_started", thread=run.thread, run=run)
    return Lease(run_id=run.pk, token=token, seconds=seconds), run
