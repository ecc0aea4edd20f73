"""`SqliteStore`: the store in one SQLite file (created with mode 0600), or in a
`sqlite3.Connection` the caller passes (used as given: its file and mode are the caller's).
Safe for several threads (one connection per thread for a path; a lock around a given
connection) and several processes on one file (WAL, busy timeout)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestration.store.base import BaseStore, Row, prefix_bounds

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,     -- serde bytes (no pickle), as checkpoints
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""
_COLUMNS = "namespace, key, value, created_at, updated_at"
_UPSERT = (
    "INSERT INTO store (namespace, key, value, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
    "updated_at = excluded.updated_at"
)
# rowid order is insertion order; an upsert keeps the row (and its place)
_UNDER = (
    "SELECT namespace, key, value, created_at, updated_at FROM store "
    "WHERE namespace = ? OR (namespace > ? AND namespace < ?) "
    "ORDER BY rowid"
)


def _private_file(path: Path) -> None:
    for name in (str(path), f"{path}-wal", f"{path}-shm"):
        fd = os.open(name, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)


class SqliteStore(BaseStore):
    def __init__(
        self, path: str | os.PathLike[str] | sqlite3.Connection, *, busy_timeout: float = 30.0,
        index: Mapping[str, Any] | None = None,
    ) -> None:
        self._use_index(index)  # semantic search (orchestration.store.semantic)
        self._given: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._local = threading.local()
        self._busy = busy_timeout
        if isinstance(path, sqlite3.Connection):
            self._given = path
            self.path: Path | None = None
        else:
            if str(path) == ":memory:":
                raise ValueError(
                    "SqliteStore(path) needs a file path (threads share the file); use "
                    "InMemoryStore, or pass a sqlite3.Connection you opened yourself"
                )
            self.path = Path(path)
            if not self.path.exists() or self.path.stat().st_size == 0:
                _private_file(self.path)
        self.setup()

    @classmethod
    @contextmanager
    def from_conn_string(cls, conn_string: str) -> Iterator[SqliteStore]:
        """As LangGraph's: a store on the file `conn_string`, closed when the block ends."""
        store = cls(conn_string)
        try:
            yield store
        finally:
            store.close()

    def setup(self) -> None:
        """Create the table if missing; any number of calls is harmless."""
        with self._conn() as conn:
            if self._given is None:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        if self._given is not None:
            with self._lock:
                yield self._given
            return
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            assert self.path is not None
            conn = sqlite3.connect(self.path, timeout=self._busy, isolation_level=None)
            self._local.conn, self._local.pid = conn, os.getpid()
        yield conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _read(self, ns: str, key: str) -> Row | None:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM store WHERE namespace = ? AND key = ?",  # noqa: S608
                (ns, key),
            ).fetchone()
        return None if row is None else _row(row)

    def _write(self, ns: str, key: str, data: bytes, at: datetime) -> None:
        stamp = at.isoformat()
        with self._conn() as conn:
            conn.execute(_UPSERT, (ns, key, data, stamp, stamp))
            if self._given is not None and conn.in_transaction:
                conn.commit()  # a connection opened in the default mode holds a transaction

    def _remove(self, ns: str, key: str) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM store WHERE namespace = ? AND key = ?", (ns, key))
            if self._given is not None and conn.in_transaction:
                conn.commit()

    def _rows_under(self, prefix: str) -> Iterable[Row]:
        with self._conn() as conn:
            if not prefix:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM store ORDER BY rowid").fetchall()  # noqa: S608
            else:
                rows = conn.execute(_UNDER, (prefix, *prefix_bounds(prefix))).fetchall()
        return [_row(r) for r in rows]

    def _all_namespaces(self) -> Iterable[str]:
        with self._conn() as conn:
            return [ns for (ns,) in conn.execute("SELECT DISTINCT namespace FROM store")]


def _row(row: tuple[object, ...]) -> Row:
    ns, key, data, created, updated = row
    return (
        str(ns), str(key), bytes(data),  # type: ignore[arg-type]
        datetime.fromisoformat(str(created)), datetime.fromisoformat(str(updated)),
    )
