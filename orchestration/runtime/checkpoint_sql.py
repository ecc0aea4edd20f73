"""The Django saver's hot paths in SQL: a put, a task's pending writes, and the reads behind
`get_tuple`, `list` and blob fetching, for PostgreSQL and SQLite.

Why SQL and not the ORM: a superstep is one checkpoint write, and the ORM spent ~30x the cost
of the write itself building six statements. Here:

- **PostgreSQL**: a put is ONE statement, hence one round trip and (in autocommit) its own
  transaction: CTEs lock the run's row if the lease still holds (the fence), upsert the
  thread with its new head, insert the field versions too big for the checkpoint's row
  (`unnest` of arrays, so the text never changes with the number of rows) and the checkpoint
  row with the small new ones inside it (`Checkpoint.vals`), each depending on the fence's
  row. A worker that
  lost its lease matches no run row, so nothing else is written and the caller raises.
  Inside a caller's `transaction.atomic` the statement simply joins that transaction.
- **SQLite**: the usual put is also ONE statement in autocommit (`sqlite_backend/put.py`):
  an `INSERT` of the checkpoint row that SQLite refuses unless the lease holds, the
  thread's head moved by a trigger (migration 0009). What a commit costs is mostly the
  pages it writes to the WAL, so it touches as few as it can: the checkpoint row with its
  small new field versions inside it (`Checkpoint.vals`, no `FieldVersion` row), its index
  entries and the thread's row; the run's row is only read. A thread's first put, an id
  stored again, or a refused fence take the general path: the same steps as a few statements
  inside one `BEGIN IMMEDIATE` transaction (SQLite has no data-modifying CTEs).

The row format is the models' (`models.Checkpoint`, `FieldVersion`, `PendingWrite`).
"""

from __future__ import annotations

import _thread
import functools
import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from orchestration.checkpoint.storage import Blob, EncodedPut, Pair, WriteRecord
from orchestration.checkpoint.storage.inline import pack_inline, unpack_inline
from orchestration.runtime import models, pgstatement
from orchestration.runtime.sqlite_backend.put import SqlitePut

RUN = models.Run._meta.db_table
THREAD = models.Thread._meta.db_table
CHECKPOINT = models.Checkpoint._meta.db_table
FIELD_VERSION = models.FieldVersion._meta.db_table
PENDING = models.PendingWrite._meta.db_table


@dataclass(frozen=True, slots=True)
class FenceArgs:
    """The lease a write must still hold: run `run_id`, token `token`, status running."""

    run_id: int
    token: str


class FenceFailed(Exception):
    """The run row did not match the lease: nothing was written."""


class ParentMissing(Exception):
    """A put carrying held-back pending writes found no parent checkpoint to attach them to:
    nothing was written."""


def _user_table() -> str:
    return get_user_model()._meta.db_table


def _compact_json_encoder() -> Callable[[Any], str]:
    """Compact JSON text of a value, made by one C encoder built once: `JSONEncoder.encode`
    builds a new one on every call, which cost more (~2 µs) than encoding the small values a
    put carries (four per put). No check for cycles: the values are the saver's own lists
    and dicts of strings and the JSON-safe copy of `metadata.extra`. NaN and infinities
    raise ValueError (`allow_nan` off): on SQLite this encoder is what keeps the JSON columns
    valid since migration 0011 dropped their `JSON_VALID` CHECKs."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    chunks = make(
        None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None,
        ":", ",", False, False, False,  # sort_keys, skipkeys, allow_nan
    )
    return lambda value: "".join(chunks(value, 0))


_encode_json = _compact_json_encoder()
_json_text = json.encoder.encode_basestring_ascii


def _json(value: Any) -> str:
    """`value` as compact JSON. A put's four JSON columns are mostly an empty dict (`extra`)
    and one-name lists (`next`, `written_by` of a chain's superstep): those are written
    here without the encoder's call and join (~4k instructions each)."""
    kind = type(value)
    if kind is dict:
        if not value:
            return "{}"
    elif (kind is list or kind is tuple) and len(value) == 1 and type(value[0]) is str:
        return f"[{_json_text(value[0])}]"
    return _encode_json(value)


def _fence_params(fence: FenceArgs | None, *, now: bool = True) -> dict[str, Any]:
    """The fence's parameters; `now` (the time it sets as the run's heartbeat) only for the
    fences that set it (SQLite's general path)."""
    if fence is None:
        return {}
    if not now:
        return {"run_id": fence.run_id, "token": fence.token}
    return {"run_id": fence.run_id, "token": fence.token, "now": timezone.now()}


# --- PostgreSQL ---------------------------------------------------------------------------

# The fence locks the run's row FOR SHARE until the write's transaction ends: whoever takes
# the run away (a sweeper, `resume_stalled`) updates that row, so it waits for the write to
# commit and then finds the run as the write left it, or the write finds the run taken and
# writes nothing; the check and the write are one atomic step, as with an UPDATE of the row.
# A lock writes no new row version: an UPDATE (of `heartbeat_at`, HOT) cost the server
# ~13 µs of CPU more per put and left a dead version of the run's row per superstep.
# Renewing the lease and its heartbeat is the heartbeat thread's job (every third of the
# lease), as on SQLite, whose put only reads the row.
_PG_FENCE = f"""fence AS (
    SELECT 1 AS ok FROM {RUN}
    WHERE id = %(run_id)s AND lease_token = %(token)s AND status = 'running'
    FOR SHARE
)"""
_PG_NO_FENCE = "fence AS (SELECT 1 AS ok)"


# The field versions too big for the checkpoint's row, when the put has any.
_PG_BLOBS = f"""blobs AS (
    INSERT INTO {FIELD_VERSION} (thread_id, field, version, kind, base, data)
    SELECT thread.id, b.field, b.version, b.kind, b.base, b.data FROM thread,
        unnest(%(b_field)s::text[], %(b_version)s::text[], %(b_kind)s::text[],
               %(b_base)s::text[], %(b_data)s::bytea[]) AS b(field, version, kind, base, data)
    ON CONFLICT (thread_id, field, version) DO NOTHING
),
"""


@functools.cache  # built once per combination: the text keys its prepared statement
def _pg_put_sql(fenced: bool, with_writes: bool, own_writes: bool, blobs: bool) -> str:
    """The put statement. `with_writes`: it first replaces the pending writes of the tasks
    in `w_task` on the parent checkpoint (writes held back by `put_writes_deferred`), and
    writes nothing at all (a third column, the parent's count, says 0) if that parent is
    not there: one statement, so one transaction and one commit for both. `own_writes`:
    those writes go on the checkpoint this statement stores (a held input checkpoint and
    its first superstep's pending writes, e.g. an interrupt), again in one commit. `blobs`:
    it inserts field versions too big for the checkpoint's row (`b_*`); without them (the
    usual superstep) the statement has no such INSERT at all, which even inserting no rows
    cost the server ~8 µs of CPU per put."""
    source = "fence"
    writes = ""
    if with_writes:
        source = "wtarget"
        # As in `_pg_writes_sql`: the DELETE is referenced by the INSERT, so it runs first.
        writes = f"""
wtarget AS (
    SELECT c.id FROM {CHECKPOINT} c, fence
    WHERE c.id = {_pg_checkpoint_pk("parent_pk", "parent_id")}
        AND c.checkpoint_id = %(parent_id)s
),
{_pg_replace_writes("wtarget", "wdropped", "wadded")},"""
    tail = ", (SELECT count(*) FROM wtarget)" if with_writes else ""
    # `commit` ('off', or NULL: the session's setting) is how this statement's transaction
    # commits: set for it alone, so a pooler that hands the session to others (PgBouncer in
    # transaction mode) carries nothing over. Evaluated only when the fence held.
    commit = "set_config('synchronous_commit', COALESCE(%(commit)s, "
    commit += "current_setting('synchronous_commit')), true) <> ''"
    return f"""WITH {_PG_FENCE if fenced else _PG_NO_FENCE},{writes}
thread AS (
    INSERT INTO {THREAD} AS t
        (thread_id, graph_name, title, status, head_checkpoint_id, created_at, updated_at)
    SELECT %(thread_id)s, '', '', 'new', %(head)s, %(created)s, %(created)s FROM {source}
    ON CONFLICT (thread_id) DO UPDATE SET head_checkpoint_id =
        CASE WHEN %(checkpoint_ns)s = '' THEN EXCLUDED.head_checkpoint_id
        ELSE t.head_checkpoint_id END
    RETURNING t.id
),
{_PG_BLOBS if blobs else ""}row AS (
    INSERT INTO {CHECKPOINT} AS c
        (thread_id, checkpoint_id, checkpoint_ns, parent_id, step, source, next, versions,
         internal, writes, extra, written_by, created_at, created_by_id, reason, vals)
    SELECT thread.id, %(checkpoint_id)s, %(checkpoint_ns)s,
        COALESCE(%(parent_pk)s::bigint, (SELECT p.id FROM {CHECKPOINT} p
         WHERE p.thread_id = thread.id AND p.checkpoint_id = %(parent_id)s)),
        %(step)s, %(source)s, %(next)s::jsonb, %(versions)s::jsonb, %(internal)s, %(meta)s,
        %(extra)s::jsonb, %(written_by)s::jsonb, %(created)s,
        (SELECT u.id FROM {_user_table()} u WHERE u.id = %(user_id)s), %(reason)s, %(vals)s
    FROM thread
    ON CONFLICT (thread_id, checkpoint_id) DO UPDATE SET
        parent_id = EXCLUDED.parent_id, step = EXCLUDED.step, source = EXCLUDED.source,
        next = EXCLUDED.next, versions = EXCLUDED.versions, internal = EXCLUDED.internal,
        writes = EXCLUDED.writes, extra = EXCLUDED.extra, written_by = EXCLUDED.written_by,
        created_at = EXCLUDED.created_at, created_by_id = EXCLUDED.created_by_id,
        reason = EXCLUDED.reason, vals = EXCLUDED.vals
    RETURNING c.id
){_pg_own_writes_sql() if own_writes else ""}
SELECT (SELECT count(*) FROM fence WHERE {commit}), (SELECT id FROM row){tail}"""


def _pg_checkpoint_pk(pk: str, checkpoint_id: str) -> str:
    """The pk of checkpoint `%(checkpoint_id)s` of thread `%(thread_id)s`: `%(pk)s` when the
    caller knows it (it wrote or read that row), else looked up by the thread's pk, so that
    both lookups match an index on every column they name whatever the tables' statistics:
    joined to the thread's row instead, the generic plan of a prepared statement on tables
    not yet analyzed (a new database) scanned every checkpoint row for the id."""
    return f"""COALESCE(%({pk})s::bigint, (SELECT p.id FROM {CHECKPOINT} p
            WHERE p.thread_id = (SELECT t.id FROM {THREAD} t WHERE t.thread_id = %(thread_id)s)
            AND p.checkpoint_id = %({checkpoint_id})s))"""


def _pg_own_writes_sql() -> str:
    """The CTEs of `own_writes`: as `_pg_writes_sql`, with the stored row as the target. Its
    earlier writes of the same tasks (a checkpoint id stored again) are replaced: the DELETE
    sees the rows as they were before the statement, and is referenced so it runs first."""
    return ",\n" + _pg_replace_writes("row", "odropped", "oadded")


def _pg_replace_writes(target: str, dropped: str, added: str) -> str:
    """Two CTEs that replace the pending writes of the tasks in `w_task` on the checkpoint
    row of CTE `target`: the DELETE is referenced by the INSERT, so it runs first (the tasks'
    earlier writes are gone, and their unique keys free, before the new ones go in, in write
    order)."""
    return f"""{dropped} AS (
    DELETE FROM {PENDING} w USING {target}
    WHERE w.checkpoint_id = {target}.id AND w.task_id = ANY(%(w_task)s::text[]) RETURNING 1
),
{added} AS (
    INSERT INTO {PENDING} (checkpoint_id, task_id, idx, channel, data)
    SELECT {target}.id, w.task_id, w.idx, w.channel, w.data FROM {target},
        unnest(%(w_task)s::text[], %(w_idx)s::int[], %(w_channel)s::text[],
               %(w_data)s::bytea[]) WITH ORDINALITY AS w(task_id, idx, channel, data, n)
    WHERE (SELECT count(*) FROM {dropped}) >= 0
    ORDER BY w.n
)"""


@functools.cache
def _pg_writes_sql(fenced: bool) -> str:
    # The DELETE is referenced by the INSERT, so it runs first: the task's earlier writes are
    # gone (and their unique keys free) before its new ones go in, at the end of write order.
    return f"""WITH {_PG_FENCE if fenced else _PG_NO_FENCE},
target AS (
    SELECT c.id FROM {CHECKPOINT} c, fence
    WHERE c.id = {_pg_checkpoint_pk("checkpoint_pk", "checkpoint_id")}
        AND c.checkpoint_id = %(checkpoint_id)s
),
dropped AS (
    DELETE FROM {PENDING} w USING target
    WHERE w.checkpoint_id = target.id AND w.task_id = %(task_id)s RETURNING 1
),
added AS (
    INSERT INTO {PENDING} (checkpoint_id, task_id, idx, channel, data)
    SELECT target.id, %(task_id)s, w.idx, w.channel, w.data FROM target,
        unnest(%(w_idx)s::int[], %(w_channel)s::text[], %(w_data)s::bytea[])
            AS w(idx, channel, data)
    WHERE (SELECT count(*) FROM dropped) >= 0
    ORDER BY w.idx
)
SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM target)"""


def _pg_one(connection: BaseDatabaseWrapper, sql: str, params: dict[str, Any]) -> Any:
    """Run `sql` on Django's connection as a server-side prepared statement; its one row.

    Django's cursors would have the server parse and plan the long CTE statements on every
    call; prepared (`pgstatement`), each is planned once per connection."""
    return pgstatement.one(connection, _pg_statement(sql), params)


# The type of each parameter of the statements sent without psycopg's cursor (`PgStatement`):
# fixed, so one prepared statement serves every call (psycopg would pick int2/int4/int8 by
# value, and NULL has no type).
_PG_PARAM_TYPES = {
    "run_id": "int8", "token": "text", "now": "timestamptz", "thread_id": "text",
    "checkpoint_id": "text", "checkpoint_ns": "text", "head": "text", "parent_id": "text",
    "parent_pk": "int8", "checkpoint_pk": "int8", "step": "int8", "source": "text", "next": "text",
    "versions": "text", "internal": "bytea", "meta": "bytea", "extra": "text",
    "written_by": "text", "user_id": "int8", "reason": "text", "created": "timestamptz",
    "b_field": "text[]", "b_version": "text[]", "b_kind": "text[]", "b_base": "text[]",
    "b_data": "bytea[]", "w_task": "text[]", "w_idx": "int4[]", "w_channel": "text[]",
    "w_data": "bytea[]", "task_id": "text", "commit": "text", "vals": "bytea",
}


def _pg_statement(sql: str) -> pgstatement.PgStatement:
    return pgstatement.fixed_statement(sql, _PG_PARAM_TYPES)


def private_connection(connection: BaseDatabaseWrapper) -> Any:
    """A new raw DB-API connection to `connection`'s database, configured as Django would
    (adapters, SQLite functions and pragmas), in autocommit: for the write-behind writer."""
    params = connection.get_connection_params()
    if connection.vendor == "postgresql":
        import psycopg

        raw = psycopg.connect(**params)
        raw.autocommit = True
        return raw
    raw = connection.get_new_connection(params)
    raw.isolation_level = None  # autocommit; a put opens its own BEGIN IMMEDIATE
    return raw


# --- the writes -----------------------------------------------------------------------------

PutJob = Callable[[Any], "int | None"]


def put_checkpoint(
    connection: BaseDatabaseWrapper,
    encoded: EncodedPut,
    *,
    written_by: list[str],
    created_at: datetime,
    user_id: int | None,
    reason: str,
    fence: FenceArgs | None,
    parent_pk: int | None,
    checkpoint_ns: str = "",
) -> int:
    """Store `encoded` and move the thread's head to it on Django's connection; returns the
    new row's pk. Raises `FenceFailed` having written nothing. `parent_pk`, when the caller
    knows it (it wrote or read the parent), spares PostgreSQL the lookup of the parent row by
    id (SQLite looks it up: see `_sqlite_put_job`). A
    subgraph's checkpoint (`checkpoint_ns` not empty) never moves the thread's head, which is
    the root graph's."""
    job = put_job(
        connection, encoded, written_by=written_by, created_at=created_at, user_id=user_id,
        reason=reason, fence=fence, parent_pk=parent_pk, checkpoint_ns=checkpoint_ns,
    )
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        connection.validate_no_broken_transaction()
        with connection.wrap_database_errors:
            pk = job(connection.connection)
    else:
        pk = _in_sqlite_transaction(connection, job)
    if pk is None:
        raise FenceFailed
    return pk


def put_checkpoint_after_writes(
    connection: BaseDatabaseWrapper,
    encoded: EncodedPut,
    writes: Sequence[tuple[str, Sequence[WriteRecord]]],
    *,
    written_by: list[str],
    created_at: datetime,
    user_id: int | None,
    reason: str,
    fence: FenceArgs | None,
    parent_pk: int | None,
    checkpoint_ns: str = "",
) -> int:
    """SQLite: `put_checkpoint`, and first, in the same transaction, `writes` ((task id, its
    writes) each replacing that task's earlier ones) on the put's parent checkpoint: a
    resume's answers and the resumed superstep's checkpoint in one commit (what PostgreSQL's
    put statement does with its `writes`). Under `fence`, checked by the put: if it refuses,
    the transaction is rolled back, answers included (`FenceFailed`); `ParentMissing` if
    the parent is not there (nothing written). Returns the new row's pk."""
    if connection.vendor != "sqlite":
        raise ValueError("PostgreSQL's put carries its parent's writes in its statement")
    parent_id = encoded.record.parent_id
    if parent_id is None:
        raise ParentMissing
    job = put_job(
        connection, encoded, written_by=written_by, created_at=created_at, user_id=user_id,
        reason=reason, fence=fence, parent_pk=parent_pk, checkpoint_ns=checkpoint_ns,
    )
    target = {"thread_id": encoded.record.thread_id, "checkpoint_id": parent_id}
    rows = [(task_id, [(w.idx, w.channel, w.data) for w in records])
            for task_id, records in writes]

    def both(raw: Any) -> int:
        cursor = raw.cursor()
        try:
            cursor.execute(_SQLITE_TARGET, target)
            found = cursor.fetchone()
            if found is None:
                raise ParentMissing
            (checkpoint_pk,) = found
            for task_id, values in rows:
                cursor.execute(_SQLITE_DROP_WRITES, (checkpoint_pk, task_id))
                cursor.executemany(_SQLITE_ADD_WRITE,
                                   [(checkpoint_pk, task_id, *value) for value in values])
        finally:
            cursor.close()
        pk = job(raw)  # the fenced put: under the write lock taken at BEGIN, with the writes
        if pk is None:
            raise FenceFailed  # rolls the writes back too
        return pk

    return _in_sqlite_transaction(connection, both)  # type: ignore[return-value]


def _in_sqlite_transaction(connection: BaseDatabaseWrapper, job: PutJob) -> int | None:
    """Run `job` on Django's SQLite connection in one write transaction: the caller's, inside
    an atomic block, else a `BEGIN IMMEDIATE ... COMMIT` of its own straight on the sqlite3
    connection (`atomic` would toggle Django's autocommit twice around it, which cost as much
    as the put's statements)."""
    if not _sqlite_autocommit(connection):
        with transaction.atomic(using=connection.alias):
            return job(connection.connection)
    if connection._thread_ident != _thread.get_ident():  # noqa: SLF001
        # Django's check, only when it can fail: its `allow_thread_sharing` takes a lock
        # (~3k instructions a put).
        connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        return in_transaction(job)(connection.connection)


def _sqlite_autocommit(connection: BaseDatabaseWrapper) -> bool:
    """Whether Django's SQLite connection is in autocommit and outside any atomic block
    (connected first if it is not). `get_autocommit()` says the same, but its
    `ensure_connection` (an `async_unsafe` call: an environment lookup and an event-loop
    probe) cost ~17k instructions, 3% of a worker's superstep; it runs here only when there
    is no connection yet."""
    if connection.connection is None:
        connection.ensure_connection()
    return not connection.in_atomic_block and connection.autocommit


def put_job(
    connection: BaseDatabaseWrapper,
    encoded: EncodedPut,
    *,
    written_by: list[str],
    created_at: datetime,
    user_id: int | None,
    reason: str,
    fence: FenceArgs | None,
    parent_pk: int | None,
    checkpoint_ns: str = "",
    writes: Sequence[tuple[str, WriteRecord]] = (),
    own_writes: Sequence[tuple[str, WriteRecord]] = (),
    synchronous_commit: bool = True,
) -> PutJob:
    """The put as a job for a raw connection to `connection`'s database (Django's own, inside
    its transaction handling, or the write-behind writer's private one): it returns the new
    row's pk, or None when the fence failed and nothing was written. Everything that needs
    Django (parameter adaptation) is done here, on the caller's thread.

    `writes` ((task id, write) in write order; PostgreSQL only): pending writes of the parent
    checkpoint that replace those tasks' earlier ones in the same statement, so they commit
    with the put or not at all (`ParentMissing` if the parent is not there). `own_writes`
    (PostgreSQL only): pending writes of the stored checkpoint itself, in the same statement.
    `synchronous_commit=False` (PostgreSQL only): the statement's transaction commits without
    waiting for the WAL flush."""
    if connection.vendor != "postgresql":
        if writes or own_writes or not synchronous_commit:
            raise ValueError("only PostgreSQL puts carry pending writes or skip the WAL flush")
        return _sqlite_put_job(
            connection, encoded, written_by=written_by, created_at=created_at,
            user_id=user_id, reason=reason, fence=fence, parent_pk=parent_pk,
            checkpoint_ns=checkpoint_ns,
        )
    record = encoded.record
    blobs = encoded.blobs
    fenced = fence is not None
    params: dict[str, Any] = {
        **_fence_params(fence, now=False),
        "thread_id": record.thread_id,
        "checkpoint_id": record.checkpoint_id,
        "checkpoint_ns": checkpoint_ns,
        "head": "" if checkpoint_ns else record.checkpoint_id,
        "parent_id": record.parent_id,
        "parent_pk": parent_pk,
        "step": record.step,
        "source": record.source,
        "next": _json(record.next),
        "versions": _json(record.versions),
        "internal": record.internal,
        "meta": record.meta,
        "extra": _json(record.extra_json),
        "written_by": _json(written_by),
        "user_id": user_id,
        "reason": reason,
    }
    if connection.vendor == "postgresql":
        params["vals"] = pack_inline(encoded.inline) if encoded.inline else None
        params["created"] = created_at
        params["commit"] = None if synchronous_commit else "off"
        if blobs:
            params["b_field"] = [b.field for b in blobs]
            params["b_version"] = [b.version for b in blobs]
            params["b_kind"] = [b.kind for b in blobs]
            params["b_base"] = [b.base or "" for b in blobs]
            params["b_data"] = [b.data for b in blobs]
        if not writes and not own_writes:
            return PgPut(_pg_put_sql(fenced, False, False, bool(blobs)), params)
        if writes and own_writes:
            raise ValueError("a put carries its parent's pending writes or its own, not both")
        carried = writes or own_writes
        params["w_task"] = [task_id for task_id, _ in carried]
        params["w_idx"] = [w.idx for _, w in carried]
        params["w_channel"] = [w.channel for _, w in carried]
        params["w_data"] = [w.data for _, w in carried]
        return PgPut(_pg_put_sql(fenced, bool(writes), not writes, bool(blobs)), params)
    raise AssertionError("unreachable: SQLite puts return above")


class PgPut:
    """A PostgreSQL put: called with a raw connection it runs the statement and returns the
    row's pk (None: the fence failed, nothing written); `send` only sends it, on the
    write-behind connection, and returns the function that collects that outcome."""

    __slots__ = ("params", "sql")

    def __init__(self, sql: str, params: dict[str, Any]) -> None:
        self.sql, self.params = sql, params

    def __call__(self, raw: Any) -> int | None:
        return _put_outcome(pgstatement.row(raw, _pg_statement(self.sql), self.params))

    def send(self, raw: Any) -> Callable[[], int | None]:
        statement = _pg_statement(self.sql)
        statement.send(raw, self.params)

        def collect() -> int | None:
            row = statement.collect(raw)
            assert row is not None  # the statement always returns its one row
            return _put_outcome(row)

        return collect


def _put_outcome(row: Sequence[Any]) -> int | None:
    """The put statement's row -> the new row's pk, None if the fence failed; raises
    `ParentMissing` (the fence held, nothing written) for a put with writes and no parent.
    Values come as ints (psycopg's cursor) or text bytes (`PgStatement.collect`)."""
    matched, pk = row[0], row[1]
    if matched is None or not int(matched):
        return None
    if pk is None:
        if len(row) > 2:
            raise ParentMissing
        raise AssertionError("a put whose fence held stored no row")
    return int(pk)


def in_transaction(job: PutJob) -> PutJob:
    """`job` on a raw sqlite3 connection in autocommit (the write-behind thread's; Django's
    gets `transaction.atomic`): a put as one statement when it can (`SqlitePut.autocommit`),
    anything else inside BEGIN IMMEDIATE ... COMMIT. PostgreSQL needs nothing: a put is one
    statement, its own transaction."""
    if isinstance(job, SqlitePut):
        return job.autocommit

    def run(raw: Any) -> int | None:
        raw.execute("BEGIN IMMEDIATE")
        try:
            pk = job(raw)
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
        return pk

    return run


def _sqlite_put_job(
    connection: BaseDatabaseWrapper,
    encoded: EncodedPut,
    *,
    written_by: list[str],
    created_at: datetime,
    user_id: int | None,
    reason: str,
    fence: FenceArgs | None,
    parent_pk: int | None,
    checkpoint_ns: str,
) -> SqlitePut:
    """`put_job` on SQLite: the row's values in the statements' parameter order, built here,
    outside the write transaction (the gate and SQLite's lock are held for the statements
    only). The usual put is one statement (`sqlite_backend.put`); `sqlite_job` below is the
    general path (a thread's first put, an id stored again, a refused fence),
    where the thread's pk, known only in the transaction, is put in front.

    The parent row is looked up by its checkpoint id (one probe of the unique index, ~1 µs),
    not named by `parent_pk`: since migration 0008 a pk can be reused once the newest rows
    are deleted, and a remembered pk could then name another thread's row."""
    record = encoded.record
    to_text = _sqlite_datetime(connection)
    created = to_text(created_at)
    thread_id = record.thread_id
    # After (thread pk, id, namespace, thread pk): the parent's id, then the columns in order.
    row = (
        record.parent_id, record.step, record.source, _json(record.next),
        _json(record.versions), record.internal, record.meta, _json(record.extra_json),
        _json(written_by), created, reason,
        pack_inline(encoded.inline) if encoded.inline else None,
    )
    blobs = [(b.field, b.version, b.kind, b.base or "", b.data) for b in encoded.blobs]
    cid = record.checkpoint_id
    head = "" if checkpoint_ns else cid

    def sqlite_job(raw: Any) -> int | None:
        cursor = raw.cursor()  # the sqlite3 cursor: no per-call rewriting
        try:
            if fence is not None:
                fence_args = (to_text(timezone.now()), fence.run_id, fence.token)
                cursor.execute(_SQLITE_FENCE, fence_args)
                if cursor.rowcount != 1:
                    return None
            threads = _sqlite_thread_pks(connection)
            thread_pk = _sqlite_thread(cursor, threads, thread_id, head, checkpoint_ns, created)
            if blobs:
                cursor.executemany(_SQLITE_BLOB, [(thread_pk, *blob) for blob in blobs])
            row_params = (thread_pk, cid, checkpoint_ns, thread_pk, *row)
            return _sqlite_insert(cursor, row_params, user_id)
        finally:
            cursor.close()

    fenced = () if fence is None else (fence.run_id, fence.token)
    params = (thread_id, *fenced, cid, checkpoint_ns, thread_id, *row)
    return SqlitePut(params, fence is not None, blobs, sqlite_job, user_id=user_id)


def _sqlite_thread(
    cursor: Any, threads: dict[str, int], thread_id: str, head: str, checkpoint_ns: str,
    created: str,
) -> int:
    """The thread's row pk, its head moved to `head` (a subgraph's put leaves it)."""
    thread_pk = threads.get(thread_id)
    if thread_pk is not None and not checkpoint_ns:
        # The thread's row is known: move its head by primary key. The thread id in the WHERE
        # clause proves the remembered pk still names this thread (a row renamed, or a
        # database rolled back and refilled, falls back to the upsert below).
        cursor.execute(_SQLITE_HEAD, (head, thread_pk, thread_id))
        if cursor.rowcount == 1:
            return thread_pk
    cursor.execute(_SQLITE_THREAD, {
        "thread_id": thread_id, "head": head, "checkpoint_ns": checkpoint_ns,
        "created": created,
    })
    (thread_pk,) = cursor.fetchone()
    cursor.fetchall()  # finish the statement (RETURNING)
    if len(threads) >= 4096:  # a worker moves on from threads; forget the old ones
        threads.clear()
    threads[thread_id] = thread_pk
    return int(thread_pk)


def _sqlite_insert(cursor: Any, row: tuple[Any, ...], user_id: int | None) -> int:
    """Insert the checkpoint row (`row`: the parameters of `_SQLITE_INSERT_CHECKPOINT`);
    its pk."""
    if user_id is None:
        # The usual put: a new checkpoint. A plain INSERT is half the cost of the upsert with
        # its user lookup; the rare put of an id already stored (its unique key refuses the
        # row, and SQLite undoes only that statement) takes the upsert.
        try:
            cursor.execute(_SQLITE_INSERT_CHECKPOINT, row)
            return int(cursor.lastrowid)
        except sqlite3.IntegrityError as error:
            if _SQLITE_CHECKPOINT_TAKEN not in str(error):
                raise
    cursor.execute(_sqlite_checkpoint_sql(), (*row, user_id))
    (pk,) = cursor.fetchone()
    cursor.fetchall()
    return int(pk)


def _sqlite_datetime(connection: BaseDatabaseWrapper) -> Callable[[datetime], str]:
    """Django's `adapt_datetimefield_value` for SQLite (naive text in the connection's time
    zone), minus its per-call settings and timezone lookups; one function per zone, made
    once."""
    # The connection's `timezone` is None without USE_TZ, and Django forgets it when either
    # setting changes: one cached attribute instead of reading `settings` (a lazy object,
    # ~3k instructions) at every put.
    zone = connection.timezone
    if zone is None:
        return connection.ops.adapt_datetimefield_value  # type: ignore[no-any-return]
    return _to_text_in(zone)


_TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))


# The text down to the minute of the last datetime `_naive_text` wrote: a worker's puts
# come microseconds apart, so it is the same for nearly every put.
_minute_text: tuple[tuple[int, int, int, int, int], str] = ((0, 0, 0, 0, 0), "")


def _naive_text(value: datetime) -> str:
    """`str(value)` without its UTC offset: "YYYY-MM-DD HH:MM:SS[.ffffff]", the text Django
    stores. `str` formats each field through C's printf (~13k instructions a datetime, 3% of
    a superstep); here the text down to the minute is kept from the previous put and the
    seconds come from a table (8.5k -> 6.6k)."""
    global _minute_text
    minute = (value.year, value.month, value.day, value.hour, value.minute)
    known, head = _minute_text
    if known != minute:
        year, month, day, hour, mins = minute
        if year < 1000:  # zero-padded years: rare enough for the slow way
            return str(value.replace(tzinfo=None))
        digits = _TWO_DIGITS
        head = f"{year}-{digits[month]}-{digits[day]} {digits[hour]}:{digits[mins]}:"
        _minute_text = (minute, head)
    micro = value.microsecond
    if micro:
        return f"{head}{_TWO_DIGITS[value.second]}.{str(1_000_000 + micro)[1:]}"
    return head + _TWO_DIGITS[value.second]


@functools.cache
def _to_text_in(zone: Any) -> Callable[[datetime], str]:
    def to_text(value: datetime) -> str:
        tz = value.tzinfo
        if tz is UTC and zone is UTC:
            # The usual put: a UTC ts, a UTC connection: the naive value's text, as `str`
            # writes it, put together here (`_naive_text`).
            return _naive_text(value)
        if tz is zone:
            return str(value.replace(tzinfo=None))
        if tz is not None:
            value = value.astimezone(zone).replace(tzinfo=None)
        return str(value)

    return to_text


# Per SQLite database file: thread id -> its `Thread` row's pk, for the head update by pk.
# Never trusted alone: the update checks the thread id too.
_SQLITE_THREAD_PKS: dict[str, dict[str, int]] = {}


def _sqlite_thread_pks(connection: BaseDatabaseWrapper) -> dict[str, int]:
    name = str(connection.settings_dict["NAME"])
    found = _SQLITE_THREAD_PKS.get(name)
    if found is None:
        found = _SQLITE_THREAD_PKS[name] = {}
    return found


def _sqlite_fence(cursor: Any, params: dict[str, Any], ops: Any) -> None:
    now = ops.adapt_datetimefield_value(params["now"])
    cursor.execute(_SQLITE_FENCE, (now, params["run_id"], params["token"]))
    if cursor.rowcount != 1:
        raise FenceFailed


def put_pending_writes(
    connection: BaseDatabaseWrapper,
    thread_id: str,
    checkpoint_id: str,
    task_id: str,
    records: Sequence[WriteRecord],
    fence: FenceArgs | None,
    checkpoint_pk: int | None = None,
) -> bool:
    """Replace task `task_id`'s pending writes on the checkpoint. False if the checkpoint
    does not exist (nothing written); `FenceFailed` if the lease is gone. `checkpoint_pk`,
    when the caller knows the checkpoint's row (it wrote or read it), spares PostgreSQL
    looking it up."""
    on_pg = connection.vendor == "postgresql"
    params: dict[str, Any] = {
        **_fence_params(fence, now=not on_pg), "thread_id": thread_id,
        "checkpoint_id": checkpoint_id, "task_id": task_id,
    }
    if on_pg:
        params["checkpoint_pk"] = checkpoint_pk
        params["w_idx"] = [w.idx for w in records]
        params["w_channel"] = [w.channel for w in records]
        params["w_data"] = [w.data for w in records]
        fenced, found = _pg_one(connection, _pg_writes_sql(fence is not None), params)
        if not fenced:
            raise FenceFailed
        return bool(found)
    with transaction.atomic(using=connection.alias):
        cursor = connection.connection.cursor()
        try:
            if fence is not None:
                _sqlite_fence(cursor, params, connection.ops)
            cursor.execute(_SQLITE_TARGET, params)
            row = cursor.fetchone()
            if row is None:
                return False
            (checkpoint_pk,) = row
            cursor.execute(_SQLITE_DROP_WRITES, (checkpoint_pk, task_id))
            cursor.executemany(
                _SQLITE_ADD_WRITE,
                [(checkpoint_pk, task_id, w.idx, w.channel, w.data) for w in records],
            )
        finally:
            cursor.close()
    return True


# --- SQLite statements ----------------------------------------------------------------------

_SQLITE_FENCE = (
    f"UPDATE {RUN} SET heartbeat_at = ? "
    "WHERE id = ? AND lease_token = ? AND status = 'running'"
)
_SQLITE_HEAD = f"UPDATE {THREAD} SET head_checkpoint_id = ? WHERE id = ? AND thread_id = ?"
# The parent row, by (thread pk, parent's checkpoint id); NULL for a first checkpoint.
_SQLITE_PARENT = f"(SELECT p.id FROM {CHECKPOINT} p WHERE p.thread_id = ? AND p.checkpoint_id = ?)"
_SQLITE_CHECKPOINT_COLUMNS = (
    f"INSERT INTO {CHECKPOINT} (thread_id, checkpoint_id, checkpoint_ns, parent_id, step, "
    "source, next, versions, internal, writes, extra, written_by, created_at, reason, vals, "
    "created_by_id) "
)
_SQLITE_INSERT_CHECKPOINT = (
    f"{_SQLITE_CHECKPOINT_COLUMNS}VALUES (?, ?, ?, {_SQLITE_PARENT}, ?, ?, ?, ?, ?, ?, ?, ?, "
    "?, ?, ?, NULL)"
)
_SQLITE_CHECKPOINT_TAKEN = (
    f"UNIQUE constraint failed: {CHECKPOINT}.thread_id, {CHECKPOINT}.checkpoint_id"
)
_SQLITE_THREAD = (
    f"INSERT INTO {THREAD} "
    "(thread_id, graph_name, title, status, head_checkpoint_id, created_at, updated_at) "
    "VALUES (:thread_id, '', '', 'new', :head, :created, :created) "
    "ON CONFLICT (thread_id) DO UPDATE SET head_checkpoint_id = "
    "CASE WHEN :checkpoint_ns = '' THEN excluded.head_checkpoint_id "
    f"ELSE {THREAD}.head_checkpoint_id END "
    "RETURNING id"
)
_SQLITE_BLOB = (
    f"INSERT INTO {FIELD_VERSION} (thread_id, field, version, kind, base, data) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (thread_id, field, version) DO NOTHING"
)
_SQLITE_TARGET = (
    f"SELECT c.id FROM {CHECKPOINT} c JOIN {THREAD} t ON t.id = c.thread_id "
    "WHERE t.thread_id = :thread_id AND c.checkpoint_id = :checkpoint_id"
)
_SQLITE_DROP_WRITES = f"DELETE FROM {PENDING} WHERE checkpoint_id = ? AND task_id = ?"
_SQLITE_ADD_WRITE = (
    f"INSERT INTO {PENDING} (checkpoint_id, task_id, idx, channel, data) "
    "VALUES (?, ?, ?, ?, ?)"
)


@functools.cache  # the user model's table is known once the apps are loaded
def _sqlite_checkpoint_sql() -> str:
    """The upsert of a checkpoint row: `_SQLITE_INSERT_CHECKPOINT`'s parameters, then the
    user (kept only if that user exists)."""
    return f"""{_SQLITE_CHECKPOINT_COLUMNS}
VALUES (?, ?, ?, {_SQLITE_PARENT}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
    (SELECT u.id FROM {_user_table()} u WHERE u.id = ?))
ON CONFLICT (thread_id, checkpoint_id) DO UPDATE SET
    parent_id = excluded.parent_id, step = excluded.step, source = excluded.source,
    next = excluded.next, versions = excluded.versions, internal = excluded.internal,
    writes = excluded.writes, extra = excluded.extra, written_by = excluded.written_by,
    created_at = excluded.created_at, created_by_id = excluded.created_by_id,
    reason = excluded.reason, vals = excluded.vals
RETURNING id"""


# --- reads ----------------------------------------------------------------------------------

_HAS_WRITES = f"EXISTS (SELECT 1 FROM {PENDING} w WHERE w.checkpoint_id = c.id)"
_ROW_COLUMNS = (
    "c.id, c.checkpoint_id, p.checkpoint_id, c.step, c.source, c.next, c.versions, "
    f"c.internal, c.writes, c.extra, {_HAS_WRITES}"
)
_ROW_FROM = (
    f"FROM {CHECKPOINT} c JOIN {THREAD} t ON t.id = c.thread_id "
    f"LEFT JOIN {CHECKPOINT} p ON p.id = c.parent_id WHERE t.thread_id = %s "
    "AND c.checkpoint_ns = %s"
)
_LATEST = f"SELECT {_ROW_COLUMNS} {_ROW_FROM} ORDER BY c.checkpoint_id DESC LIMIT 1"
_BY_ID = f"SELECT {_ROW_COLUMNS} {_ROW_FROM} AND c.checkpoint_id = %s"


def load_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


# On PostgreSQL the row comes with its pending writes (a resume reads them), aggregated in
# write order: one round trip instead of two.
_PG_WRITES_OF_ROW = (
    "LEFT JOIN LATERAL (SELECT array_agg(w.task_id ORDER BY w.id) AS task_ids, "
    "array_agg(w.idx ORDER BY w.id) AS idxs, array_agg(w.channel ORDER BY w.id) AS channels, "
    f"array_agg(w.data ORDER BY w.id) AS datas FROM {PENDING} w WHERE w.checkpoint_id = c.id) "
    "w ON true"
)
# The thread's pk comes from a subquery, not a join: the checkpoint rows are then found by
# the (thread, checkpoint id) index whatever the tables' statistics (joined, the generic plan
# of the prepared statement on tables not yet analyzed scanned every checkpoint row for an
# id), and the latest is the last entry of that index for the thread: a backward scan that
# stops at the first row of the namespace, where the join read all of the thread's rows and
# sorted them.
_PG_THREAD_ROWS = (
    f"c.thread_id = (SELECT t.id FROM {THREAD} t WHERE t.thread_id = %(thread_id)s) "
    "AND c.checkpoint_ns = %(checkpoint_ns)s"
)
_PG_ROW = (
    f"SELECT {_ROW_COLUMNS}, w.task_ids, w.idxs, w.channels, w.datas, c.vals "
    f"FROM {CHECKPOINT} c "
    f"LEFT JOIN {CHECKPOINT} p ON p.id = c.parent_id {_PG_WRITES_OF_ROW} "
    f"WHERE {_PG_THREAD_ROWS}"
)
# The latest row is chosen first and only its pending writes are aggregated: with the
# ORDER BY ... LIMIT outside, PostgreSQL aggregated the writes of every checkpoint of the
# thread before sorting (a 404-checkpoint thread: 9-12 ms, 0.9 ms this way).
_PG_LATEST = (
    f"SELECT {_ROW_COLUMNS}, w.task_ids, w.idxs, w.channels, w.datas, c.vals "
    f"FROM (SELECT c.* FROM {CHECKPOINT} c WHERE {_PG_THREAD_ROWS} "
    "ORDER BY c.checkpoint_id DESC LIMIT 1) c "
    f"LEFT JOIN {CHECKPOINT} p ON p.id = c.parent_id {_PG_WRITES_OF_ROW}"
)
_PG_BY_ID = f"{_PG_ROW} AND c.checkpoint_id = %(checkpoint_id)s"


def checkpoint_row(
    connection: BaseDatabaseWrapper, thread_id: str, checkpoint_id: str | None,
    checkpoint_ns: str = "",
) -> tuple[tuple[Any, ...], list[WriteRecord] | None, bytes | None] | None:
    """(pk, id, parent id, step, source, next, versions, internal, meta, extra, has writes)
    of the named checkpoint or the thread's latest, its pending writes if this read fetched
    them (None: ask `pending_writes` when it has some), and on PostgreSQL the field versions
    kept in the row (`Checkpoint.vals`, None on SQLite, where reading them apart costs no
    round trip): the values of a paused run's head are mostly there, and a worker's saver,
    new for each run, read them with a query of their own before its resume could start."""
    if connection.vendor == "postgresql":
        sql = _PG_LATEST if checkpoint_id is None else _PG_BY_ID
        row = _pg_one(
            connection, sql,
            {
                "thread_id": thread_id, "checkpoint_id": checkpoint_id,
                "checkpoint_ns": checkpoint_ns,
            },
        )
        if row is None:
            return None
        task_ids, idxs, channels, datas, vals = row[11:]
        writes = [
            WriteRecord(task_id, idx, channel, bytes(data))
            for task_id, idx, channel, data in zip(
                task_ids or (), idxs or (), channels or (), datas or (), strict=True
            )
        ]
        return row[:11], writes, vals
    with connection.cursor() as cursor:
        if checkpoint_id is None:
            cursor.execute(_LATEST, [thread_id, checkpoint_ns])
        else:
            cursor.execute(_BY_ID, [thread_id, checkpoint_ns, checkpoint_id])
        found = cursor.fetchone()
    return None if found is None else (found, None, None)


def pending_writes(
    connection: BaseDatabaseWrapper, thread_id: str, low: str, high: str,
    only: Sequence[str] = (),
) -> list[tuple[str, str, int, str, bytes]]:
    """(checkpoint id, task id, idx, channel, data) of the thread's checkpoints with ids in
    [low, high] (and, given `only`, among those few ids), in write order."""
    among = f" AND c.checkpoint_id IN ({', '.join(['%s'] * len(only))})" if only else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.checkpoint_id, w.task_id, w.idx, w.channel, w.data FROM {PENDING} w "
            f"JOIN {CHECKPOINT} c ON c.id = w.checkpoint_id "
            f"JOIN {THREAD} t ON t.id = c.thread_id "
            f"WHERE t.thread_id = %s AND c.checkpoint_id BETWEEN %s AND %s{among} "
            "ORDER BY w.id",
            [thread_id, low, high, *only],
        )
        return [(cid, task, idx, ch, bytes(data)) for cid, task, idx, ch, data in cursor]


def field_versions(
    connection: BaseDatabaseWrapper,
    thread_id: str,
    fields: Sequence[str],
    low: str | None,
    high: str,
) -> list[Blob]:
    """The stored versions of `fields` with versions in [low, high] (no lower bound if
    `low` is None): a superset the caller filters."""
    marks = ", ".join(["%s"] * len(fields))
    sql = (
        f"SELECT f.field, f.version, f.kind, f.base, f.data FROM {FIELD_VERSION} f "
        f"JOIN {THREAD} t ON t.id = f.thread_id WHERE t.thread_id = %s "
        f"AND f.field IN ({marks}) AND f.version <= %s"
    )
    params: list[Any] = [thread_id, *fields, high]
    if low is not None:
        sql += " AND f.version >= %s"
        params.append(low)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            Blob(field, version, kind, base or None, bytes(data))
            for field, version, kind, base, data in cursor
        ]


# --- field versions kept in the checkpoint's row (`Checkpoint.vals`) ---------------------------

# A new field version of at most this many packed bytes goes in the row of the checkpoint that
# created it (at most 4x this per row): the superstep then writes no `FieldVersion` row.
# SQLite (the engine SQLite saver's limit): two B-tree pages fewer per commit.
SQLITE_INLINE_MAX = 192
# PostgreSQL: no heap tuple, unique-index entry or deferred foreign-key check of its own, ~90
# bytes of WAL fewer per version. 384 keeps a row's kept versions (4x: 1,536 bytes) and its
# other columns under the ~2 KB past which PostgreSQL compresses a row and moves its big
# columns to TOAST (a second tuple and index entry). Measured over 300 appends: 300-byte
# items took 2.73 stored bytes per appended byte kept in rows vs 3.19 as `FieldVersion` rows
# (WAL 1,272 vs 1,594 bytes per superstep); 1 KB items, which would not fit, took 1.71 kept
# vs 1.63 as rows.
PG_INLINE_MAX = 384


def inline_max(connection: BaseDatabaseWrapper) -> int:
    """The largest packed field version a put on `connection` keeps in the checkpoint's row."""
    return PG_INLINE_MAX if connection.vendor == "postgresql" else SQLITE_INLINE_MAX


def inline_versions(
    connection: BaseDatabaseWrapper, thread_id: str, checkpoint_ids: Sequence[str] = (),
    *, up_to: str | None = None, fields: Collection[str] | None = None,
) -> list[Blob]:
    """The field versions kept in the rows of the thread's checkpoints `checkpoint_ids`, or
    (`up_to`) of every checkpoint whose id is at most `up_to`: an append chain's bases, however
    long the chain, in one query (as `field_versions` with no lower bound); only `fields`'
    versions when given."""
    head = (
        f"SELECT c.checkpoint_id, c.vals FROM {CHECKPOINT} c "
        f"JOIN {THREAD} t ON t.id = c.thread_id WHERE t.thread_id = %s AND c.vals IS NOT NULL"
    )
    if up_to is not None:
        queries = [(f"{head} AND c.checkpoint_id <= %s", [thread_id, up_to])]
    else:
        queries = []
        for start in range(0, len(checkpoint_ids), 500):  # SQLite's bound-parameter limit
            chunk = list(checkpoint_ids[start:start + 500])
            marks = ", ".join(["%s"] * len(chunk))
            queries.append((f"{head} AND c.checkpoint_id IN ({marks})", [thread_id, *chunk]))
    found: list[Blob] = []
    for sql, params in queries:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for checkpoint_id, vals in cursor.fetchall():
                found.extend(unpack_inline(checkpoint_id, vals, fields=fields).values())
    return found


# PostgreSQL: one wave of `DjangoCheckpointSaver._fetch` in one round trip. The field
# versions stored as rows (as `field_versions`), then the rows of the checkpoints that kept
# in their own row what those did not hold (as `inline_versions`): each by its id (the first
# wave), or every row up to the newest missing version (an append chain's bases). Each form is
# its own text, so the planner probes the (thread, checkpoint id) index with the ids (or
# scans its range) and, with nothing missing, reads no checkpoint row at all.
def _pg_wave_sql(by_id: bool) -> str:
    which = (
        "c.checkpoint_id IN (SELECT version FROM missing)" if by_id
        else "c.checkpoint_id <= (SELECT max(version) FROM missing)"
    )
    return f"""WITH rows AS (
    SELECT f.field, f.version, f.kind, f.base, f.data FROM {FIELD_VERSION} f
    JOIN {THREAD} t ON t.id = f.thread_id
    WHERE t.thread_id = %(thread_id)s AND f.field = ANY(%(fields)s::text[])
        AND f.version <= %(high)s AND (%(low)s::text IS NULL OR f.version >= %(low)s)
),
missing AS (
    SELECT w.version FROM unnest(%(w_field)s::text[], %(w_version)s::text[]) AS w(field, version)
    WHERE NOT EXISTS (SELECT 1 FROM rows r WHERE r.field = w.field AND r.version = w.version)
)
SELECT r.field, r.version, r.kind, r.base, r.data FROM rows r
UNION ALL
SELECT c.checkpoint_id, NULL, NULL, NULL, c.vals FROM {CHECKPOINT} c
JOIN {THREAD} t ON t.id = c.thread_id
WHERE EXISTS (SELECT 1 FROM missing) AND t.thread_id = %(thread_id)s AND {which}
    AND c.vals IS NOT NULL"""


_PG_WAVE = {True: _pg_wave_sql(by_id=True), False: _pg_wave_sql(by_id=False)}


def stored_versions(
    connection: BaseDatabaseWrapper, thread_id: str, wanted: Sequence[Pair], *, first: bool
) -> list[Blob]:
    """PostgreSQL: the stored versions of the fields of `wanted`, as rows or kept in their
    checkpoint's row, in one query: a superset the caller filters. `first`: the versions
    between the lowest and highest wanted and the rows named by the ones missing there;
    otherwise (an append chain's bases, anywhere before) every stored version up to the
    highest wanted, and every checkpoint row up to the highest missing."""
    versions = [version for _, version in wanted]
    params = {
        "thread_id": thread_id, "fields": sorted({field for field, _ in wanted}),
        "high": max(versions), "low": min(versions) if first else None,
        "w_field": [field for field, _ in wanted], "w_version": versions,
    }
    found: list[Blob] = []
    with connection.cursor() as cursor:
        cursor.execute(_PG_WAVE[first], params)
        # fetchall: one call for the rows, where iterating the cursor costs a Python call
        # per row (a long append chain's wave brings thousands)
        for field, version, kind, base, data in cursor.fetchall():
            if version is None:  # a checkpoint row's `vals`; `field` is its checkpoint id
                found.extend(unpack_inline(field, bytes(data)).values())
            else:
                found.append(Blob(field, version, kind, base or None, bytes(data)))
    return found
