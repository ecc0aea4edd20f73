"""`SqliteSaver`: checkpoints in one SQLite file (stdlib `sqlite3`), shared by threads and
processes.

Durability: WAL journal with `synchronous=NORMAL`. A committed put is in the WAL file before
`put` returns, so killing the process (even `kill -9`) loses nothing committed; a power cut
may lose the last few commits but never corrupts the file (SQLite's documented guarantee for
WAL + NORMAL). Each put is one `BEGIN IMMEDIATE` transaction holding the checkpoint row and
its blobs, so a reader sees a checkpoint whole or not at all.

Concurrency: one connection per thread (and per process after a fork); writers serialize on
SQLite's write lock and wait up to `busy_timeout` for it instead of failing with
"database is locked".
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestration.checkpoint import serde, storage
from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    metadata_matches,
    validate_filter,
)
from orchestration.checkpoint.storage import (
    APPEND,
    FULL,
    Blob,
    CheckpointRecord,
    Pair,
    WriteRecord,
)
from orchestration.errors import CheckpointNotFound

__all__ = ["SqliteSaver"]

_KIND_CODE = {FULL: 0, APPEND: 1}
_KIND_NAME = {0: FULL, 1: APPEND}

# auto_vacuum only takes effect when set before the first table exists (a new file).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    thread_id     TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    parent_id     TEXT,
    step          INTEGER NOT NULL,
    source        TEXT NOT NULL,
    next          TEXT NOT NULL,     -- JSON list of node names
    versions      TEXT NOT NULL,     -- JSON object: field -> version
    internal      BLOB NOT NULL,     -- serde bytes
    meta          BLOB NOT NULL,     -- serde bytes: [writes, extra, ts]
    extra         TEXT NOT NULL,     -- JSON-safe part of metadata.extra, for filtering
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
"""

_COLUMNS = (
    "thread_id, checkpoint_id, parent_id, step, source, next, versions, internal, meta, extra"
)
_SELECT = f"SELECT {_COLUMNS} FROM checkpoints"  # noqa: S608 - constant column list
_LATEST = f"{_SELECT} WHERE thread_id = ? ORDER BY checkpoint_id DESC LIMIT 1"
_BY_ID = f"{_SELECT} WHERE thread_id = ? AND checkpoint_id = ?"

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


class SqliteSaver(BaseCheckpointSaver):
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        if str(path) == ":memory:":
            raise ValueError(
                "SqliteSaver needs a file path (threads and processes share the file); "
                "use InMemoryCheckpointSaver for checkpoints in memory"
            )
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._cache = storage.ValueCache()
        self._setup()

    # --- connections ----------------------------------------------------------------------

    def _setup(self) -> None:
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

    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        conn = self._conn()
        with self._read(conn):
            if config.checkpoint_id is None:
                row = conn.execute(_LATEST, (config.thread_id,)).fetchone()
            else:
                row = conn.execute(_BY_ID, (config.thread_id, config.checkpoint_id)).fetchone()
            if row is None:
                return None
            return self._decode(conn, [_record(row)])[0]

    def list(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[CheckpointTuple]:
        wanted = validate_filter(filter)
        if limit is not None and limit <= 0:
            return []
        sql, params, leftover = _list_query(config.thread_id, before, wanted, limit)
        conn = self._conn()
        with self._read(conn):
            records = [_record(row) for row in conn.execute(sql, params)]
            if leftover:
                records = [r for r in records if metadata_matches(_metadata(r), leftover)]
                if limit is not None:
                    records = records[:limit]
            records.reverse()
            return self._decode(conn, records)

    def put(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        encoded = storage.encode_checkpoint(
            config.thread_id, config.checkpoint_id, checkpoint, metadata, self._cache
        )
        record = encoded.record
        conn = self._conn()
        with self._write(conn):
            if encoded.blobs:
                conn.executemany(
                    "INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (record.thread_id, b.field, b.version, _KIND_CODE[b.kind], b.base, b.data)
                        for b in encoded.blobs
                    ],
                )
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.thread_id, record.checkpoint_id, record.parent_id, record.step,
                    record.source, json.dumps(record.next), json.dumps(record.versions),
                    record.internal, record.meta, json.dumps(record.extra_json),
                ),
            )
        storage.remember_put(self._cache, encoded)
        return CheckpointConfig(config.thread_id, checkpoint.id)

    def put_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if config.checkpoint_id is None:
            raise ValueError("put_writes needs a config naming the checkpoint the writes belong to")
        records = storage.encode_writes(writes, task_id)
        key = (config.thread_id, config.checkpoint_id)
        conn = self._conn()
        with self._write(conn):
            exists = conn.execute(
                "SELECT 1 FROM checkpoints WHERE thread_id = ? AND checkpoint_id = ?", key
            ).fetchone()
            if exists is None:
                raise CheckpointNotFound(
                    f"no checkpoint {config.checkpoint_id!r} in thread {config.thread_id!r} "
                    "to attach pending writes to"
                )
            conn.execute(
                "DELETE FROM writes WHERE thread_id = ? AND checkpoint_id = ? AND task_id = ?",
                (*key, task_id),
            )
            conn.executemany(
                "INSERT INTO writes (thread_id, checkpoint_id, task_id, idx, channel, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(*key, w.task_id, w.idx, w.channel, w.data) for w in records],
            )

    def delete_thread(self, thread_id: str) -> None:
        conn = self._conn()
        with self._write(conn):
            for table in ("writes", "blobs", "checkpoints"):
                conn.execute(f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,))  # noqa: S608
        self._cache.forget_thread(thread_id)
        conn.execute("PRAGMA incremental_vacuum").fetchall()  # runs a step per freed page

    # --- retention ------------------------------------------------------------------------

    def prune(self, thread_id: str, *, keep_last: int) -> int:
        """Keep the thread's `keep_last` newest checkpoints (and the values they need); delete
        the older ones and their pending writes. Returns how many checkpoints were deleted.

        An appended field version whose base is deleted is first rewritten as a full value,
        so every kept checkpoint still reads back exactly.
        """
        if keep_last < 1:
            raise ValueError("prune keeps at least one checkpoint; use delete_thread to drop all")
        conn = self._conn()
        with self._write(conn):
            rows = conn.execute(
                "SELECT checkpoint_id, versions FROM checkpoints WHERE thread_id = ? "
                "ORDER BY checkpoint_id DESC",
                (thread_id,),
            ).fetchall()
            dropped = [cid for cid, _ in rows[keep_last:]]
            if not dropped:
                return 0
            needed = {pair for _, v in rows[:keep_last] for pair in json.loads(v).items()}
            self._compact_orphaned_appends(conn, thread_id, needed)
            stored = conn.execute(
                "SELECT field, version FROM blobs WHERE thread_id = ?", (thread_id,)
            ).fetchall()
            conn.executemany(
                "DELETE FROM blobs WHERE thread_id = ? AND field = ? AND version = ?",
                [(thread_id, f, v) for f, v in stored if (f, v) not in needed],
            )
            for table in ("writes", "checkpoints"):
                conn.executemany(
                    f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id = ?",  # noqa: S608
                    [(thread_id, cid) for cid in dropped],
                )
        conn.execute("PRAGMA incremental_vacuum").fetchall()  # runs a step per freed page
        return len(dropped)

    def _compact_orphaned_appends(
        self, conn: sqlite3.Connection, thread_id: str, needed: set[Pair]
    ) -> None:
        appends = conn.execute(
            "SELECT field, version, base FROM blobs WHERE thread_id = ? AND kind = 1", (thread_id,)
        ).fetchall()
        orphaned = [
            (f, v) for f, v, base in appends if (f, v) in needed and (f, base) not in needed
        ]
        if not orphaned:
            return
        full = storage.resolve_values(
            thread_id, orphaned, self._cache, lambda pairs: self._fetch(conn, thread_id, pairs)
        )
        conn.executemany(
            "UPDATE blobs SET kind = 0, base = NULL, data = ? "
            "WHERE thread_id = ? AND field = ? AND version = ?",
            [(full[pair], thread_id, *pair) for pair in orphaned],
        )

    # --- reading helpers ------------------------------------------------------------------

    def _fetch(self, conn: sqlite3.Connection, thread_id: str, pairs: list[Pair]) -> dict:
        rows = conn.execute(_FETCH_CHAINS, {"thread": thread_id, "pairs": json.dumps(pairs)})
        return {
            (f, v): Blob(f, v, _KIND_NAME[kind], base, data) for f, v, kind, base, data in rows
        }

    def _decode(
        self, conn: sqlite3.Connection, records: list[CheckpointRecord]
    ) -> list[CheckpointTuple]:
        if not records:
            return []
        thread_id = records[0].thread_id
        values = storage.resolve_values(
            thread_id, storage.record_pairs(records), self._cache,
            lambda pairs: self._fetch(conn, thread_id, pairs),
        )
        writes: dict[str, list[WriteRecord]] = {}
        rows = conn.execute(
            "SELECT checkpoint_id, task_id, idx, channel, data FROM writes "
            "WHERE thread_id = ? AND checkpoint_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY seq",
            (thread_id, json.dumps([r.checkpoint_id for r in records])),
        )
        for cid, task_id, idx, channel, data in rows:
            writes.setdefault(cid, []).append(WriteRecord(task_id, idx, channel, data))
        storage.remember_read(self._cache, records)
        return [storage.decode_tuple(r, values, writes.get(r.checkpoint_id, ())) for r in records]


def _record(row: tuple[Any, ...]) -> CheckpointRecord:
    thread_id, cid, parent_id, step, source, next_, versions, internal, meta, extra = row
    return CheckpointRecord(
        thread_id=thread_id,
        checkpoint_id=cid,
        parent_id=parent_id,
        step=step,
        source=source,
        next=tuple(json.loads(next_)),
        versions=json.loads(versions),
        internal=internal,
        meta=meta,
        extra_json=json.loads(extra),
        ts=datetime.min,  # the exact ts lives in `meta`
    )


def _metadata(record: CheckpointRecord) -> CheckpointMetadata:
    _, extra, _ = serde.loads(record.meta)
    return CheckpointMetadata(record.source, record.step, extra=extra)  # type: ignore[arg-type]


_SCALARS = (str, int, float, bool, type(None))


def _list_query(
    thread_id: str,
    before: CheckpointConfig | None,
    wanted: Mapping[str, Any],
    limit: int | None,
) -> tuple[str, list[Any], dict[str, Any]]:
    """One indexed query. Filter keys were validated as identifiers and the JSON path is still
    bound as a parameter; values are always parameters. Structured filter values (dicts,
    lists) are compared in Python (`leftover`), since JSON text equality depends on key order."""
    where = ["thread_id = ?"]
    params: list[Any] = [thread_id]
    leftover: dict[str, Any] = {}
    if before is not None and before.checkpoint_id is not None:
        where.append("checkpoint_id < ?")
        params.append(before.checkpoint_id)
    for key, value in wanted.items():
        if key in ("source", "step"):
            where.append(f"{key} = ?")
            params.append(value)
        elif type(value) not in _SCALARS:
            leftover[key] = value
        else:
            path = f'$."{key}"'
            if value is None:
                where.append("json_type(extra, ?) = 'null'")
                params.append(path)
            elif type(value) is bool:
                where.append("json_type(extra, ?) = ?")
                params += [path, "true" if value else "false"]
            elif type(value) is str:
                where.append("json_type(extra, ?) = 'text' AND json_extract(extra, ?) = ?")
                params += [path, path, value]
            else:
                where.append(
                    "json_type(extra, ?) IN ('integer', 'real') AND json_extract(extra, ?) = ?"
                )
                params += [path, path, value]
    sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY checkpoint_id DESC"
    if limit is not None and not leftover:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params, leftover
