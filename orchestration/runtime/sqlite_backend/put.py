"""The Django saver's put on SQLite as ONE statement: an `INSERT` of the checkpoint row whose
thread is NULL, hence refused, unless the run's lease still holds (the fence) and the thread's
row exists, and whose trigger (migration 0009) moves the thread's head. In autocommit it is its
own transaction: no BEGIN, no COMMIT, no separate fence or head statements.

Why the fence may be a read here (on PostgreSQL it is an UPDATE): SQLite takes the database's
write lock when a writing statement starts, before it reads anything, and holds it until the
statement's transaction ends. Whoever takes the run away (a sweeper, `resume_stalled`) writes
the run's row under that same lock, so the lease cannot change between the check and the
insert: the check and the write are one atomic step, as the fence's UPDATE was inside BEGIN
IMMEDIATE. What no longer happens per put is the run's `heartbeat_at` being set (one WAL page
per commit): the lease's heartbeat thread sets it, every third of the lease.

A NULL thread refused by its NOT NULL column means the fence refused or the thread has no
row yet (a thread's first put); a unique-key refusal means this checkpoint id is stored
already. Both take the general path (`general`: the fence as an UPDATE, the thread's upsert,
the upsert of the row) in a transaction, which tells the two apart and writes nothing when
the fence refuses. New field
versions too big to stay in the row (`FieldVersion` rows) go in the same transaction as the
insert, after it.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any

from orchestration.runtime import models

RUN = models.Run._meta.db_table
THREAD = models.Thread._meta.db_table
CHECKPOINT = models.Checkpoint._meta.db_table
FIELD_VERSION = models.FieldVersion._meta.db_table

# The trigger of migration 0009: without it the one statement would not move the head.
HEAD_TRIGGER = "orchestration_checkpoint_moves_head"

_COLUMNS = (
    f"INSERT INTO {CHECKPOINT} (thread_id, checkpoint_id, checkpoint_ns, parent_id, step, "
    "source, next, versions, internal, writes, extra, written_by, created_at, reason, vals, "
    "created_by_id) "
)
# One row of VALUES, not `INSERT ... SELECT`: SQLite runs an INSERT ... SELECT into a table
# with a row trigger (the head's) through a temporary table, opened, filled, read and closed
# at every put (~27k instructions, a fifth of the statement). The thread's pk is a scalar
# subquery, NULL when the thread has no row yet or (fenced) the lease does not hold, and the
# NOT NULL column then refuses the row (`REFUSED`); the parent's row is looked up by its
# checkpoint id under the same thread.
# Parameters: the thread id, (fenced) the run id and the lease token; the checkpoint id,
# namespace, the thread id again, the parent's id, step, source, next, versions, internal,
# writes, extra, written_by, created_at, reason, vals. (All SQL here is built from the
# models' table names, constants, never from input: hence the S608 exemptions.)
_THREAD_PK = f"(SELECT t.id FROM {THREAD} t WHERE t.thread_id = ?"  # noqa: S608
_FENCE = (
    f" AND EXISTS (SELECT 1 FROM {RUN} r WHERE r.id = ? AND r.lease_token = ? "  # noqa: S608
    "AND r.status = 'running')"
)
_VALUES_HEAD = (
    f", ?, ?, (SELECT p.id FROM {CHECKPOINT} p WHERE p.thread_id = {_THREAD_PK}) "  # noqa: S608
    "AND p.checkpoint_id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
)
_VALUES = f"{_VALUES_HEAD}NULL)"
INSERT = f"{_COLUMNS}VALUES ({_THREAD_PK}){_VALUES}"
INSERT_FENCED = f"{_COLUMNS}VALUES ({_THREAD_PK}{_FENCE}){_VALUES}"


@functools.cache
def user_inserts() -> tuple[str, str]:
    """`INSERT` and `INSERT_FENCED` that record who the checkpoint is by: one parameter more,
    last, the user's id, kept only if that user exists (NULL otherwise, as the general
    path's upsert keeps it). A run a user started or answered puts every checkpoint so; it
    took the general path (a transaction of four statements, the fence an UPDATE) until the
    one statement named the user too."""
    from django.contrib.auth import get_user_model

    user = f"(SELECT u.id FROM {get_user_model()._meta.db_table} u WHERE u.id = ?))"  # noqa: S608
    return (f"{_COLUMNS}VALUES ({_THREAD_PK}){_VALUES_HEAD}{user}",
            f"{_COLUMNS}VALUES ({_THREAD_PK}{_FENCE}){_VALUES_HEAD}{user}")
# A new field version too big for the row, under the thread of the row just inserted.
BLOB = (
    f"INSERT INTO {FIELD_VERSION} (thread_id, field, version, kind, base, data) "  # noqa: S608
    f"SELECT c.thread_id, ?, ?, ?, ?, ? FROM {CHECKPOINT} c WHERE c.id = ? "
    "ON CONFLICT (thread_id, field, version) DO NOTHING"
)
TAKEN = f"UNIQUE constraint failed: {CHECKPOINT}.thread_id, {CHECKPOINT}.checkpoint_id"
# No thread row, or the fence refused: the thread's pk came out NULL.
REFUSED = f"NOT NULL constraint failed: {CHECKPOINT}.thread_id"

Job = Callable[[Any], "int | None"]


def has_head_trigger(raw: Any) -> bool:
    """Whether the database of the sqlite3 connection `raw` has migration 0009's trigger;
    remembered on our backend's connections (asked once per connection), asked at every put
    on a plain sqlite3 connection (Django's stock backend), which keeps no attributes."""
    known = getattr(raw, "head_trigger", None)
    if known is not None:
        return bool(known)
    found = raw.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (HEAD_TRIGGER,)
    ).fetchone() is not None
    try:
        raw.head_trigger = found
    except AttributeError:  # a plain sqlite3 connection keeps no attributes
        pass
    return found


class SqlitePut:
    """One put, its parameters built (outside the write). Called with a raw sqlite3 connection
    inside a transaction the caller runs (Django's `atomic`), it runs its statements in it;
    `autocommit` runs it on a connection in autocommit: one statement when it can, else its
    own BEGIN IMMEDIATE transaction. Both return the row's pk, or None when the fence refused
    and nothing was written."""

    __slots__ = ("blobs", "general", "params", "sql")

    def __init__(
        self, params: tuple[Any, ...], fenced: bool, blobs: list[tuple[Any, ...]],
        general: Job, user_id: int | None = None,
    ) -> None:
        if user_id is None:
            self.params = params
            self.sql = INSERT_FENCED if fenced else INSERT
        else:  # who the checkpoint is by, if that user exists
            self.params = (*params, user_id)
            self.sql = user_inserts()[1 if fenced else 0]
        self.blobs = blobs
        self.general = general

    def _insert(self, raw: Any) -> int | None:
        """The one statement; the new row's pk, or None if it inserted nothing (fence refused,
        no thread row yet, or this checkpoint id is stored already)."""
        if not has_head_trigger(raw):
            return None
        try:
            cursor = raw.execute(self.sql, self.params)
        except sqlite3.IntegrityError as error:
            if str(error) not in (TAKEN, REFUSED):
                raise
            return None  # SQLite undid this statement only: the general path tells which
        return int(cursor.lastrowid)

    def _in_transaction(self, raw: Any) -> int | None:
        pk = self._insert(raw)
        if pk is None:
            return self.general(raw)
        if self.blobs:
            raw.executemany(BLOB, [(*blob, pk) for blob in self.blobs])
        return pk

    def __call__(self, raw: Any) -> int | None:
        return self._in_transaction(raw)

    def autocommit(self, raw: Any) -> int | None:
        if not self.blobs:
            pk = self._insert(raw)  # its own transaction
            if pk is not None:
                return pk
        raw.execute("BEGIN IMMEDIATE")
        try:
            pk = self.general(raw) if not self.blobs else self._in_transaction(raw)
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
        return pk
