"""`SqliteSaver`: checkpoints in one SQLite file (stdlib `sqlite3`), shared by threads and
processes.

Durability: WAL journal with `synchronous=NORMAL`. A committed put is in the WAL file before
`put` returns, so killing the process (even `kill -9`) loses nothing committed; a power cut
may lose the last few commits but never corrupts the file (SQLite's documented guarantee for
WAL + NORMAL). Each put is one transaction, so a reader sees a checkpoint whole or not at all:
usually a single autocommit INSERT of the checkpoint row, which also holds the small field
versions the checkpoint created (one B-tree touched per superstep); a put with big values
wraps the row and its `blobs` rows in `BEGIN IMMEDIATE ... COMMIT`.

Row format (a `checkpoints` row; nothing released yet, so no older format is read):
`body` = serde bytes of `[next, versions, internal, writes, extra, ts]`, packed in one call:
`versions` maps each field to the id of the checkpoint that last changed it, null meaning
this checkpoint; `internal` is the engine's bookkeeping mapping, null when empty; `writes` is
`metadata.writes` as `storage.encode_metadata_writes` stores it; `ts` is an integer of
microseconds since the Unix epoch when it is UTC (every engine timestamp), else a datetime.
`vals` = serde bytes of `[[field, kind, base, data]...]`, the field versions this checkpoint
created that are small enough for its row (null if none): kind 0 `data` is the packed value,
kind 1 `data` is an append to version `base` (4-byte item count then the packed items), kind 2
`data` is the value itself, for small scalars (str, int, float, bool, None) packed with the row.
Bigger versions are rows of `blobs` (kinds 0 and 1 only).

Concurrency: one connection per thread (and per process after a fork); writers serialize on
SQLite's write lock and wait up to `busy_timeout` for it instead of failing with
"database is locked".
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestration.checkpoint import serde, storage
from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    HistoryEntry,
    as_checkpoint_config,
    validate_filter,
)
from orchestration.checkpoint.filters import (
    SplitFilter,
    matches_leftover,
    split_filter,
    sqlite_condition,
)
from orchestration.checkpoint.namespaces import (
    config_in,
    config_of_key,
    key_range,
    rehome,
    storage_key,
)
from orchestration.checkpoint.storage import (
    APPEND,
    Blob,
    CheckpointRecord,
    Pair,
    ReadRow,
    WriteRecord,
)
from orchestration.checkpoint.storage.gcpause import gc_paused
from orchestration.checkpoint.storage.inline import KIND_CODE, KIND_NAME, pack_inline, unpack_inline
from orchestration.errors import CheckpointNotFound, SerializationError

__all__ = ["SqliteSaver"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# A new field version of at most this many packed bytes lives in the row of the checkpoint
# that created it (at most 4x this per row), so the common superstep is one INSERT touching
# one B-tree. Rows stay well under the ~1000-byte limit above which a WITHOUT ROWID row spills
# to an overflow page. Bigger versions go to `blobs`, a rowid table, which packs ~1 KB values
# densely (the linear storage target).
INLINE_MAX = 192

# auto_vacuum only takes effect when set before the first table exists (a new file).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    thread_id     TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    parent_id     TEXT,
    step          INTEGER NOT NULL,
    source        TEXT NOT NULL,
    body          BLOB NOT NULL,     -- serde bytes, see "Row format" above
    extra         TEXT,              -- JSON-safe part of metadata.extra, for filtering; NULL: {}
    vals          BLOB,              -- serde bytes: the field versions created here, see above
    PRIMARY KEY (thread_id, checkpoint_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    thread_id TEXT NOT NULL,
    field     TEXT NOT NULL,
    version   TEXT NOT NULL,
    kind      INTEGER NOT NULL,      -- 0 full value, 1 items appended to base
    base      TEXT,
    data      BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS blobs_key ON blobs (thread_id, field, version);
CREATE TABLE IF NOT EXISTS writes (
    seq           INTEGER PRIMARY KEY,
    thread_id     TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    channel       TEXT NOT NULL,
    data          BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS writes_key ON writes (thread_id, checkpoint_id, task_id, idx);
-- A task's writes are always inserted from idx 0: inserting idx 0 first refuses writes for an
-- unknown checkpoint, then drops the task's earlier writes (a retried task replaces them).
-- put_writes is then one INSERT per write, without a SELECT or DELETE of its own.
CREATE TRIGGER IF NOT EXISTS writes_replace BEFORE INSERT ON writes WHEN NEW.idx = 0
BEGIN
    SELECT RAISE(ABORT, 'stepwise: no such checkpoint') WHERE NOT EXISTS (
        SELECT 1 FROM checkpoints
        WHERE thread_id = NEW.thread_id AND checkpoint_id = NEW.checkpoint_id
    );
    DELETE FROM writes WHERE thread_id = NEW.thread_id AND checkpoint_id = NEW.checkpoint_id
        AND task_id = NEW.task_id;
END;
"""
_NO_CHECKPOINT = "stepwise: no such checkpoint"
_INSERT_WRITE = (
    "INSERT INTO writes (thread_id, checkpoint_id, task_id, idx, channel, data) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)

# SQL texts are constants: sqlite3 caches prepared statements by text, so the hot path never
# re-parses.
# What a read needs of a row: the caller knows the thread, and `extra` (a JSON copy of
# metadata.extra, for SQL filters) is in the body too. Fewer columns, fewer objects per row.
_COLUMNS = "checkpoint_id, parent_id, step, source, body, vals"
_SELECT = f"SELECT {_COLUMNS} FROM checkpoints"  # noqa: S608 - constant column list
_LATEST = f"{_SELECT} WHERE thread_id = ? ORDER BY checkpoint_id DESC LIMIT 1"
# every storage key (a thread, or a thread's subgraph namespace) holding checkpoints
_THREAD_KEYS = "SELECT DISTINCT thread_id FROM checkpoints ORDER BY thread_id"
_BY_ID = f"{_SELECT} WHERE thread_id = ? AND checkpoint_id = ?"
_INSERT = "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_BLOB = "INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?, ?, ?)"
_INLINE_BY_IDS = (
    "SELECT checkpoint_id, vals FROM checkpoints WHERE thread_id = ? AND vals IS NOT NULL "
    "AND checkpoint_id IN (SELECT value FROM json_each(?))"
)
_INLINE_DOWN_FROM = (
    "SELECT checkpoint_id, vals FROM checkpoints WHERE thread_id = ? AND vals IS NOT NULL "
    "AND checkpoint_id <= ? ORDER BY checkpoint_id DESC"
)
# Rows a later wave of `_fetch` reads below its oldest gap, to find more of an append chain:
# times 4 each wave, so a chain of n links through inline versions takes about log4(n/64)
# waves, each walking the chain once (`_gaps`).
_CHAIN_ROWS = 64

# Up to this many versions are fetched with their whole append chains (one recursive query);
# more (a listing, whose versions are mostly each other's bases) by exact key.
_FEW = 8
_BLOBS_BY_VERSIONS = (
    "SELECT version, kind, base, data FROM blobs WHERE thread_id = ? AND field = ? "
    "AND version IN (SELECT value FROM json_each(?))"
)

_WRITES_BY_IDS = (
    "SELECT checkpoint_id, task_id, idx, channel, data FROM writes "
    "WHERE thread_id = ? AND checkpoint_id IN (SELECT value FROM json_each(?)) ORDER BY seq"
)
# One checkpoint's (a resume reads its head): an equality, not a JSON list to parse.
_WRITES_OF_ONE = (
    "SELECT checkpoint_id, task_id, idx, channel, data FROM writes "
    "WHERE thread_id = ? AND checkpoint_id = ? ORDER BY seq"
)
_WRITES_IN_RANGE = (
    "SELECT checkpoint_id, task_id, idx, channel, data FROM writes "
    "WHERE thread_id = ? AND checkpoint_id BETWEEN ? AND ? ORDER BY seq"
)

_BLOBS_IN_RANGE = (
    "SELECT version, kind, base, data FROM blobs WHERE thread_id = ? AND field = ? "
    "AND version BETWEEN ? AND ?"
)

_FETCH_CHAINS = """
WITH RECURSIVE want(field, version) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:pairs)
    UNION
    SELECT b.field, b.base FROM blobs b JOIN want w
      ON b.thread_id = :thread AND b.field = w.field AND b.version = w.version
    WHERE b.kind = 1
)
SELECT b.field, b.version, b.kind, b.base, b.data FROM blobs b JOIN want w
  ON b.thread_id = :thread AND b.field = w.field AND b.version = w.version
"""


def _touch_private(path: Path) -> None:
    """Create the database and its WAL/shared-memory files readable by the owner only, before
    SQLite would create them with the default (umask) mode."""
    for name in (str(path), f"{path}-wal", f"{path}-shm"):
        fd = os.open(name, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)


def _database_file(conn: sqlite3.Connection) -> str:
    """The file behind a connection (":memory:" for an in-memory database)."""
    for _, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return file or ":memory:"
    return ":memory:"


def _serialized[R](method: Callable[..., R]) -> Callable[..., R]:
    """A saver built on one connection given by the caller shares it between threads: its
    calls take turns (a transaction belongs to the connection, not to a thread)."""

    @functools.wraps(method)
    def wrapper(self: SqliteSaver, *args: Any, **kwargs: Any) -> R:
        lock = self._shared_lock
        if lock is None:
            return method(self, *args, **kwargs)
        with lock:
            return method(self, *args, **kwargs)

    return wrapper


class SqliteSaver(BaseCheckpointSaver):
    """Checkpoints in one SQLite file: `SqliteSaver(path)` (the file is created with mode
    0600, one connection per thread), or, as in LangGraph, `SqliteSaver(sqlite3.connect(...))`
    (that connection is used as given, shared by every thread; its file mode is the caller's;
    it is switched to autocommit so the saver's own transactions work) and
    `with SqliteSaver.from_conn_string(path) as saver:`."""

    def __init__(
        self, path: str | os.PathLike[str] | sqlite3.Connection, *, busy_timeout: float = 30.0
    ) -> None:
        self._shared: sqlite3.Connection | None = None
        self._shared_lock: threading.RLock | None = None
        if isinstance(path, sqlite3.Connection):
            self._shared = path
            self._shared_lock = threading.RLock()
            self.path = Path(_database_file(path))
        else:
            self.path = Path(path)
            if str(path) == ":memory:":
                raise ValueError(
                    "SqliteSaver needs a file path (threads and processes share the file); "
                    "use InMemorySaver for checkpoints in memory, or "
                    "SqliteSaver(sqlite3.connect(':memory:', check_same_thread=False))"
                )
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._cache = storage.ValueCache()
        self._setup()

    @classmethod
    @contextmanager
    def from_conn_string(cls, conn_string: str) -> Iterator[SqliteSaver]:
        """LangGraph's `with SqliteSaver.from_conn_string("checkpoints.db") as saver:`; the
        saver is closed when the block ends. `":memory:"` keeps everything in memory."""
        if conn_string == ":memory:":
            conn = sqlite3.connect(":memory:", check_same_thread=False)
            saver = cls(conn)
        else:
            conn, saver = None, cls(conn_string)
        try:
            yield saver
        finally:
            saver.close()
            if conn is not None:
                conn.close()

    def setup(self) -> None:
        """Create the tables (done on construction already); safe to call any number of
        times, as LangGraph code does."""
        with self._shared_lock or contextlib.nullcontext():
            self._setup()

    # --- connections ----------------------------------------------------------------------

    def _setup(self) -> None:
        if self._shared is not None:
            conn = self._shared
            if getattr(conn, "autocommit", None) is False:
                conn.autocommit = True
            elif conn.in_transaction:
                conn.commit()
            conn.isolation_level = None
            new = conn.execute("PRAGMA page_count").fetchone()[0] == 0
        else:
            new = not self.path.exists() or self.path.stat().st_size == 0
            if new:
                _touch_private(self.path)
            conn = self._conn()
        for attempt in range(50):
            try:
                if new:
                    # 8 KB pages pack ~1 KB blobs with less slack (1.65 vs 1.75 bytes per
                    # appended byte) but double the WAL bytes of every commit; puts matter more.
                    # Both pragmas must run before the first table exists.
                    conn.execute("PRAGMA page_size=4096")
                    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                if str(self.path) != ":memory:":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)  # each CREATE ... IF NOT EXISTS is atomic
                return
            except sqlite3.OperationalError as error:
                # Switching to WAL needs a moment alone with the file; another process may be
                # doing the same right now.
                if "locked" not in str(error) or attempt == 49:
                    raise
                time.sleep(0.05)

    def _conn(self) -> sqlite3.Connection:
        if self._shared is not None:
            if self._closed:
                raise RuntimeError("this SqliteSaver is closed")
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if self._closed:
            raise RuntimeError(f"SqliteSaver({str(self.path)!r}) is closed")
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False,
            timeout=self._busy_ms / 1000, cached_statements=256,
        )
        conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self, conn: sqlite3.Connection) -> Iterator[None]:
        # One snapshot for the several SELECTs a read makes.
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connections this saver opened (one given by the caller stays open)."""
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.ProgrammingError:  # pragma: no cover - closed by its thread
                pass

    def __enter__(self) -> SqliteSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the port -------------------------------------------------------------------------

    @_serialized
    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        conn = self._conn()
        key = storage_key(config)  # a subgraph's namespace is stored under its own key
        with self._read(conn):
            if config.checkpoint_id is None:
                row = conn.execute(_LATEST, (key,)).fetchone()
            else:
                row = conn.execute(_BY_ID, (key, config.checkpoint_id)).fetchone()
            if row is None:
                return None
            return rehome(self._decode(conn, key, [row]), config)[0]

    @_serialized
    def list(
        self,
        config: CheckpointConfig | None,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[CheckpointTuple]:
        if config is None:
            return self.list_all(limit, before=before, filter=filter)
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        return rehome(self._list(config, limit, before, filter, history=False), config)

    @_serialized
    def thread_configs(self) -> builtins.list[CheckpointConfig]:
        conn = self._conn()
        with self._read(conn):
            keys = [row[0] for row in conn.execute(_THREAD_KEYS)]
        return [config_of_key(key) for key in keys]

    @_serialized
    def list_history(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> builtins.list[HistoryEntry]:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        if config.checkpoint_ns:  # a subgraph's: its configs are re-homed on whole tuples
            return super().list_history(config, limit, before=before, filter=filter)
        return self._list(config, limit, before, filter, history=True)

    def _list(
        self,
        config: CheckpointConfig,
        limit: int | None,
        before: CheckpointConfig | None,
        filter: Mapping[str, Any] | None,
        *,
        history: bool,
    ) -> builtins.list[Any]:
        """The tuples `list` returns (under the storage key), or with `history` their
        history entries, oldest first."""
        wanted = validate_filter(filter)
        if limit is not None and limit <= 0:
            return []
        split = split_filter(wanted)
        key = storage_key(config)
        sql, params = _list_query(key, before, split, limit)
        conn = self._conn()
        with self._read(conn), gc_paused():  # many objects, no cycles: see `gcpause`
            rows = conn.execute(sql, params).fetchall()
            if split.leftover:
                by_id = {r[0]: r for r in rows}
                records = (_record(key, r) for r in rows)
                kept = matches_leftover(records, split.leftover, limit)
                rows = [by_id[r.checkpoint_id] for r in kept]
            rows.reverse()
            return self._decode(conn, key, rows, history=history)

    @_serialized
    def put(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        encoded = storage.encode_checkpoint(
            storage_key(config), config.checkpoint_id, checkpoint, metadata, self._cache,
            inline_max=INLINE_MAX, pack=False,
        )
        try:
            row = _row(encoded)
        except SerializationError:
            storage.explain_unpackable(encoded, checkpoint)  # raises, naming the bad value
            raise
        conn = self._conn()
        if encoded.blobs:
            with self._write(conn):
                conn.executemany(_INSERT_BLOB, _blob_rows(encoded))
                conn.execute(_INSERT, row)
        else:
            # The common superstep: one statement in autocommit mode is its own transaction
            # (atomic, durable in the WAL on return), and waits on the write lock through the
            # busy handler exactly like BEGIN IMMEDIATE.
            conn.execute(_INSERT, row)
        storage.remember_put(self._cache, encoded)
        if config.checkpoint_ns:
            return config_in(config, checkpoint.id)
        return storage.trusted_config(config.thread_id, checkpoint.id)

    @_serialized
    def put_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        if config.checkpoint_id is None:
            raise ValueError("put_writes needs a config naming the checkpoint the writes belong to")
        records = storage.encode_writes(writes, task_id)
        thread_id, checkpoint_id = storage_key(config), config.checkpoint_id
        conn = self._conn()
        try:
            if len(records) == 1:
                # The usual case (one interrupt, one answer): a single autocommit INSERT is
                # its own transaction, and the `writes_replace` trigger does the rest.
                (w,) = records
                row = (thread_id, checkpoint_id, task_id, 0, w.channel, w.data)
                conn.execute(_INSERT_WRITE, row)
                return
            with self._write(conn):
                if not records:  # nothing to insert, so no trigger: check and clear here
                    self._clear_writes(conn, thread_id, checkpoint_id, task_id)
                conn.executemany(
                    _INSERT_WRITE,
                    [(thread_id, checkpoint_id, task_id, w.idx, w.channel, w.data)
                     for w in records],
                )
        except sqlite3.IntegrityError as error:
            if _NO_CHECKPOINT not in str(error):
                raise
            raise _no_checkpoint_for_writes(thread_id, checkpoint_id) from None

    def _clear_writes(
        self, conn: sqlite3.Connection, thread_id: str, checkpoint_id: str, task_id: str
    ) -> None:
        """What the `writes_replace` trigger does, for a task that wrote nothing."""
        exists = conn.execute(
            "SELECT 1 FROM checkpoints WHERE thread_id = ? AND checkpoint_id = ?",
            (thread_id, checkpoint_id),
        ).fetchone()
        if exists is None:
            raise _no_checkpoint_for_writes(thread_id, checkpoint_id)
        conn.execute(
            "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id = ? AND task_id = ?",
            (thread_id, checkpoint_id, task_id),
        )

    @_serialized
    def delete_thread(self, thread_id: str) -> None:
        conn = self._conn()
        with self._write(conn):
            low, high = key_range(thread_id)  # and its subgraphs' namespaces
            for table in ("writes", "blobs", "checkpoints"):
                conn.execute(
                    f"DELETE FROM {table} WHERE thread_id = ? "  # noqa: S608
                    "OR (thread_id > ? AND thread_id < ?)",
                    (thread_id, low, high),
                )
        self._cache.forget_thread(thread_id)
        conn.execute("PRAGMA incremental_vacuum").fetchall()  # runs a step per freed page

    # --- retention ------------------------------------------------------------------------

    @_serialized
    def prune(self, thread_id: str, *, keep_last: int) -> int:
        """Keep the thread's `keep_last` newest checkpoints (and the values they need); delete
        the older ones and their pending writes. Returns how many checkpoints were deleted.

        A kept version that lived in a deleted checkpoint's row, or that appends to a deleted
        version, is first rewritten as a full value in `blobs`, so every kept checkpoint still
        reads back exactly.
        """
        if keep_last < 1:
            raise ValueError("prune keeps at least one checkpoint; use delete_thread to drop all")
        conn = self._conn()
        with self._write(conn):
            rows = conn.execute(
                f"{_SELECT} WHERE thread_id = ? ORDER BY checkpoint_id DESC",  # noqa: S608
                (thread_id,),
            ).fetchall()
            kept, dropped = rows[:keep_last], rows[keep_last:]
            if not dropped:
                return 0
            needed = set(storage.record_pairs(_record(thread_id, r) for r in kept))
            kept_ids = {r[0] for r in kept}
            inline = _inline_of(rows)
            stored = self._fetch(conn, thread_id, sorted(needed), inline)
            rewrite = sorted(
                pair for pair in needed
                if (pair in inline and pair[1] not in kept_ids)  # its row is going away
                or _appends_to_other_than(stored.get(pair), needed)
            )
            if rewrite:
                full = storage.resolve_values(thread_id, rewrite, self._cache, lambda _: stored)
                conn.executemany(
                    "INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, 0, NULL, ?)",
                    [(thread_id, *pair, full[pair]) for pair in rewrite],
                )
                _drop_inline(conn, thread_id, kept, set(rewrite))
            in_blobs = conn.execute(
                "SELECT field, version FROM blobs WHERE thread_id = ?", (thread_id,)
            ).fetchall()
            conn.executemany(
                "DELETE FROM blobs WHERE thread_id = ? AND field = ? AND version = ?",
                [(thread_id, f, v) for f, v in in_blobs if (f, v) not in needed],
            )
            for table in ("writes", "checkpoints"):
                conn.executemany(
                    f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id = ?",  # noqa: S608
                    [(thread_id, r[0]) for r in dropped],
                )
        conn.execute("PRAGMA incremental_vacuum").fetchall()  # runs a step per freed page
        return len(dropped)

    # --- reading helpers ------------------------------------------------------------------

    def _fetch(
        self,
        conn: sqlite3.Connection,
        thread_id: str,
        pairs: list[Pair],
        found: dict[Pair, Blob],
        read: Collection[str] = (),
    ) -> dict[Pair, Blob]:
        """The stored versions `pairs` and their append chains. `found` starts with what the
        caller already holds (inline versions of the rows it read, whose ids are `read`) and
        is filled in.

        A version lives in its creator's row or in `blobs`. First wave: the unread rows named
        by the wanted versions, then `blobs`: many versions (a listing) by exact key, a few
        (one checkpoint) following their append chains inside `blobs`. A chain that continues
        through inline versions or beyond the listed versions needs another wave: every row
        of the thread from the newest gap down to the oldest and some rows below it (four
        times more each wave), then the chains in `blobs`. Waves repeat only while they make
        progress.
        """
        wave = self._gaps(thread_id, pairs, found)
        tried: set[Pair] = set()
        first = True
        below = _CHAIN_ROWS
        while wave:
            tried.update(wave)
            unread = sorted({version for _, version in wave if version not in read})
            # Only the fields still missing: the rows a chain goes through keep other fields'
            # versions too, which nobody asked for.
            fields = {field for field, _ in wave}
            if unread and first:
                rows = conn.execute(_INLINE_BY_IDS, (thread_id, json.dumps(unread)))
                _keep_inline(rows, fields, found)
            elif unread:
                # Every row from the newest gap down to the oldest, then `below` rows more: an
                # append chain's next links are there. One row per wave made a chain of n
                # links n waves, each walking the whole chain: a new saver read the head of a
                # 3,000-step thread in 4-5 s.
                rows = self._rows_down(conn, thread_id, unread[-1], unread[0], below)
                _keep_inline(rows, fields, found)
                below *= 4
            rest = [pair for pair in wave if pair not in found]
            if rest and first and len(rest) > _FEW:
                self._fetch_exact(conn, thread_id, rest, found)
            elif rest:
                params = {"thread": thread_id, "pairs": json.dumps(rest)}
                for f, v, kind, base, data in conn.execute(_FETCH_CHAINS, params):
                    found.setdefault((f, v), Blob(f, v, KIND_NAME[kind], base, data))
            first = False
            wave = self._gaps(thread_id, pairs, found) - tried
        return found

    @staticmethod
    def _rows_down(
        conn: sqlite3.Connection, thread_id: str, high: str, low: str, below: int
    ) -> Iterator[tuple[str, bytes]]:
        """(checkpoint id, vals) of the rows from `high` down to `low`, then of `below` rows
        under `low`."""
        rows = conn.execute(_INLINE_DOWN_FROM, (thread_id, high))
        try:
            past = 0
            for row in rows:
                yield row
                if row[0] < low:
                    past += 1
                    if past >= below:
                        return
        finally:
            rows.close()

    def _fetch_exact(
        self, conn: sqlite3.Connection, thread_id: str, pairs: list[Pair], found: dict[Pair, Blob]
    ) -> None:
        # One indexed lookup per version, a statement per field: a listing's versions are
        # usually each other's append bases, so this finds whole chains without recursing.
        by_field: dict[str, list[str]] = {}
        for field, version in pairs:
            by_field.setdefault(field, []).append(version)
        for field, versions in by_field.items():
            rows = conn.execute(_BLOBS_BY_VERSIONS, (thread_id, field, json.dumps(versions)))
            for v, kind, base, data in rows:
                found.setdefault((field, v), Blob(field, v, KIND_NAME[kind], base, data))

    def _gaps(self, thread_id: str, pairs: list[Pair], found: Mapping[Pair, Blob]) -> set[Pair]:
        """Versions the chains of `pairs` still need: neither fetched nor cached. Each
        version is visited once, however many chains run through it."""
        gaps: set[Pair] = set()
        seen: set[Pair] = set()
        cache = self._cache
        for pair in pairs:
            while pair not in seen:
                seen.add(pair)
                blob = found.get(pair)
                if blob is None:
                    gaps.add(pair)
                    break
                if blob.kind != APPEND or not blob.base:
                    break
                pair = (pair[0], blob.base)
                if cache.value(thread_id, *pair) is not None:
                    break
        return gaps

    def _decode(
        self, conn: sqlite3.Connection, thread_id: str, rows: list[tuple[Any, ...]],
        *, history: bool = False,
    ) -> builtins.list[Any]:
        if not rows:
            return []
        # One pass: each row's body and inline values decoded once, no record objects.
        inline: dict[Pair, Blob] = {}
        scalars: dict[Pair, Any] = {}
        decoded = _read_rows(thread_id, rows, inline, scalars)
        read = {row[0] for row in rows}
        writes: dict[str, list[WriteRecord]] = {}
        if len(rows) > _FEW:
            # A listing: one range scan (rows are oldest first) instead of a lookup per
            # id; writes of unlisted checkpoints in the range are never looked up.
            params: tuple[Any, ...] = (thread_id, rows[0][0], rows[-1][0])
            pending = conn.execute(_WRITES_IN_RANGE, params)
        elif len(rows) == 1:
            pending = conn.execute(_WRITES_OF_ONE, (thread_id, rows[0][0]))
        else:
            pending = conn.execute(_WRITES_BY_IDS, (thread_id, json.dumps(sorted(read))))
        for cid, task_id, idx, channel, data in pending:
            writes.setdefault(cid, []).append(WriteRecord(task_id, idx, channel, data))
        fetch = (
            (lambda pairs: self._fetch_listing(conn, thread_id, pairs, inline, read))
            if len(rows) > _FEW
            else (lambda pairs: self._fetch(conn, thread_id, pairs, inline, read))
        )
        return storage.read_rows(
            thread_id, decoded, self._cache, fetch, writes, inline, history=history,
            scalars=scalars,
        )

    def _fetch_listing(
        self,
        conn: sqlite3.Connection,
        thread_id: str,
        pairs: list[Pair],
        found: dict[Pair, Blob],
        read: Collection[str],
    ) -> dict[Pair, Blob]:
        """`_fetch` for many checkpoints: one range scan of `blobs` per field, from the oldest
        to the newest version the listing names. On a thread's history those ranges hold
        exactly the versions listed (each one's append base is the one before it), so
        no chain needs following version by version; only the bases below the ranges (the
        oldest listed version's chain) are left to `_fetch`."""
        ranges: dict[str, tuple[str, str]] = {}
        for pair in pairs:
            if pair in found:
                continue
            field, version = pair
            span = ranges.get(field)
            if span is None:
                ranges[field] = (version, version)
            elif version < span[0]:
                ranges[field] = (version, span[1])
            elif version > span[1]:
                ranges[field] = (span[0], version)
        # What appends append to: of the versions in hand (the rows' own), then of those
        # fetched below. A base that is neither in hand nor fetched is left to `_fetch`.
        bases = [
            (blob.field, blob.base) for blob in found.values()
            if blob.kind == APPEND and blob.base
        ]
        kind_name = KIND_NAME
        # Made without `Blob.__init__` (a Python call through a new interpreter frame): a
        # listing makes one per checkpoint. Every field is set, as `Blob(...)` would.
        blank, blob_class = object.__new__, Blob
        for field, (low, high) in ranges.items():
            rows = conn.execute(_BLOBS_IN_RANGE, (thread_id, field, low, high))
            previous = None
            for version, kind, base, data in rows:
                blob = blank(blob_class)
                blob.field = field
                blob.version = version
                blob.kind = kind_name[kind]
                blob.base = base
                blob.data = data
                blob.value = None
                found.setdefault((field, version), blob)
                # Rows come in version order: an append to the row before is in hand.
                if kind == 1 and base and base != previous:
                    bases.append((field, base))
                previous = version
        missing = {pair for pair in pairs if pair not in found}
        missing.update(pair for pair in bases if pair not in found)
        cache = self._cache
        missing = {pair for pair in missing if cache.value(thread_id, *pair) is None}
        if missing:
            self._fetch(conn, thread_id, sorted(missing), found, read)
        return found


def _no_checkpoint_for_writes(thread_id: str, checkpoint_id: str) -> CheckpointNotFound:
    return CheckpointNotFound(
        f"no checkpoint {checkpoint_id!r} in thread {thread_id!r} to attach pending writes to; "
        "put the checkpoint first"
    )


# --- rows -----------------------------------------------------------------------------------


def _row(encoded: storage.EncodedPut) -> tuple[Any, ...]:
    """The checkpoints row of a put, packed in two calls (body, vals). Versions equal to the
    checkpoint's own id (the fields it changed) are stored as null: shorter rows, and the id
    is in the row anyway."""
    record = encoded.record
    cid = record.checkpoint_id
    internal, writes, extra = encoded.parts  # type: ignore[misc]
    ts = record.ts
    body = serde.dumps(
        [
            list(record.next),
            {f: (None if v == cid else v) for f, v in record.versions.items()},
            internal,
            writes,
            extra,
            (ts - _EPOCH) // _MICROSECOND if ts.tzinfo is UTC and not ts.fold else ts,
        ],
        where="checkpoint row",
    )
    vals = pack_inline(encoded.inline) if encoded.inline else None
    extra_json = json.dumps(record.extra_json) if record.extra_json else None
    return (
        record.thread_id, cid, record.parent_id, record.step, record.source, body,
        extra_json, vals,
    )


def _blob_rows(encoded: storage.EncodedPut) -> list[tuple[Any, ...]]:
    thread_id = encoded.record.thread_id
    return [
        (thread_id, b.field, b.version, KIND_CODE[b.kind], b.base, b.data)
        for b in encoded.blobs
    ]


def _read_rows(
    thread_id: str,
    rows: Sequence[tuple[Any, ...]],
    inline: dict[Pair, Blob] | None = None,
    scalars: dict[Pair, Any] | None = None,
) -> list[ReadRow]:
    """The rows (`_COLUMNS`) decoded for reading, each body unpacked once (the parts are
    fresh objects); with `inline`, their inline versions are added to it (the scalars to
    `scalars`, see `unpack_inline`). One loop with its names bound locally: a listing decodes
    hundreds of rows."""
    loads, microsecond = serde.loads, _MICROSECOND
    since, since_us = _EPOCH, 0
    join = "".join
    decoded: list[ReadRow] = []
    append = decoded.append
    for cid, parent_id, step, source, body, vals in rows:
        try:
            next_, compact, internal, writes, extra, ts = loads(body)
            versions = {str(f): (cid if v is None else str(v)) for f, v in compact.items()}
            join(next_)  # TypeError unless every node name is a string (a C loop, no copies)
            next_nodes = tuple(next_)
            if type(ts) is int:
                # Microseconds since the epoch, counted from the previous row's: multiplying
                # and adding a small difference takes machine words where the whole count
                # takes bignum steps (about a fifth of a row's timestamp cost). Exact.
                ts, since_us = since + (ts - since_us) * microsecond, ts
                since = ts
            if type(ts) is not datetime or type(extra) is not dict or type(writes) is not list:
                raise TypeError("unexpected types in the metadata")
            if internal is not None and type(internal) is not dict:
                raise TypeError("checkpoint.internal is not a mapping")
        except (TypeError, ValueError, AttributeError, OverflowError) as error:
            raise SerializationError(
                f"checkpoint {cid!r} of thread {thread_id!r} has a malformed body column "
                f"({error})"
            ) from None
        if vals is not None and inline is not None:
            unpack_inline(cid, vals, inline, scalars)
        append((cid, parent_id, step, source, next_nodes, versions, internal, writes, extra, ts))
    return decoded


def _record(thread_id: str, row: tuple[Any, ...]) -> CheckpointRecord:
    """The row's record (for filters and pruning; reads use `_read_rows`)."""
    ((cid, parent_id, step, source, next_nodes, versions, internal, writes, extra, ts),) = (
        _read_rows(thread_id, (row,))
    )
    return CheckpointRecord(
        thread_id, cid, parent_id, step, source, next_nodes, versions, b"", b"",
        {},  # only written, for SQL filters; reads take extra from the body
        ts, (internal, writes, extra, ts),
    )


def _keep_inline(
    rows: Iterable[tuple[str, bytes]], fields: Collection[str], found: dict[Pair, Blob]
) -> None:
    """The versions of `fields` kept in `rows` (checkpoint id, vals), added to `found` where
    it holds none yet (what the caller read stays as it is)."""
    for checkpoint_id, vals in rows:
        for pair, blob in unpack_inline(checkpoint_id, vals, fields=fields).items():
            found.setdefault(pair, blob)


def _inline_of(rows: Iterable[tuple[Any, ...]]) -> dict[Pair, Blob]:
    found: dict[Pair, Blob] = {}
    for row in rows:
        if row[5] is not None:
            unpack_inline(row[0], row[5], found)
    return found


def _appends_to_other_than(blob: Blob | None, needed: set[Pair]) -> bool:
    return blob is not None and blob.kind == APPEND and (blob.field, blob.base) not in needed


def _inline_entries(row: tuple[Any, ...]) -> list[Any]:
    return serde.loads(row[5]) if row[5] is not None else []


def _drop_inline(
    conn: sqlite3.Connection, thread_id: str, kept: list[tuple[Any, ...]], pairs: set[Pair]
) -> None:
    """Remove from the kept rows the inline versions now stored whole in `blobs`."""
    for row in kept:
        entries = _inline_entries(row)
        keep = [e for e in entries if (e[0], row[0]) not in pairs]
        if len(keep) != len(entries):
            conn.execute(
                "UPDATE checkpoints SET vals = ? WHERE thread_id = ? AND checkpoint_id = ?",
                (serde.dumps(keep) if keep else None, thread_id, row[0]),
            )


def _list_query(
    thread_id: str, before: CheckpointConfig | None, split: SplitFilter, limit: int | None
) -> tuple[str, list[Any]]:
    """One indexed query: the filter's columns and extra conditions in SQL (values and JSON
    paths are parameters), newest first; `limit` too unless Python checks a leftover."""
    where = ["thread_id = ?"]
    params: list[Any] = [thread_id]
    if before is not None and before.checkpoint_id is not None:
        where.append("checkpoint_id < ?")
        params.append(before.checkpoint_id)
    for key, value in split.columns.items():
        where.append(f"{key} = ?")  # "source" or "step", see split_filter
        params.append(value)
    for condition in split.extra:
        sql, values = sqlite_condition("extra", condition)
        where.append(sql)
        params += values
    sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY checkpoint_id DESC"
    if limit is not None and not split.leftover:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params
