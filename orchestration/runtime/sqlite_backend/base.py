"""Django's SQLite backend with a write gate (see `gate.py`): every write transaction of our
processes first queues on a `flock`, so a waiting writer is woken the moment the lock is free
instead of losing the race to SQLite's busy handler's sleeps.

The gating lives in the sqlite3 connection itself (`GatedConnection`, made by
`get_new_connection`), so it covers every way we write: Django's `atomic` (its `BEGIN
IMMEDIATE` goes through a cursor), single statements in autocommit (`save()` outside
`atomic`), and the raw `BEGIN IMMEDIATE ... COMMIT` of the Django saver's write-behind
connection, which is made by this wrapper too. The rule is one: a statement that starts a
write while no transaction is open takes the gate; the gate is let go as soon as no
transaction is open any more (COMMIT, ROLLBACK, a failed BEGIN, an autocommit statement done,
the connection closed).

Each write transaction that ends also wakes the file's WAL checkpointer (`checkpointer.py`),
so the WAL is copied back into the database in the background, not by a commit.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.backends.sqlite3 import base as sqlite_base
from django.db.backends.sqlite3.creation import DatabaseCreation as SQLiteCreation

from orchestration.runtime.sqlite_backend.checkpointer import (
    BACKSTOP_PAGES,
    WalCheckpointer,
    checkpointer_for,
)
from orchestration.runtime.sqlite_backend.gate import WriteGate, gate_for

T = TypeVar("T")

# Statements that never take SQLite's write lock by themselves; anything else (INSERT,
# UPDATE, DELETE, REPLACE, BEGIN, DDL) is a write. A misread statement costs fairness only:
# SQLite's lock still guards the data.
_READS = ("SELECT", "PRAGMA", "EXPLAIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "END",
          "WITH", "VALUES")


# Statement text -> whether it starts a write, for the texts seen first (a process runs a
# few hundred distinct ones; the rest are classified at each call). Every put asks about its
# one statement: a lookup is ~2k instructions fewer than stripping and upper-casing its head.
_STARTS_WRITE: dict[str, bool] = {}
_STARTS_WRITE_MAX = 1024


def starts_write(sql: str) -> bool:
    known = _STARTS_WRITE.get(sql)
    if known is None:
        known = not sql.lstrip()[:9].upper().startswith(_READS)
        if len(_STARTS_WRITE) < _STARTS_WRITE_MAX:
            _STARTS_WRITE[sql] = known
    return known


class GatedConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions pass the database file's write gate."""

    gate: WriteGate | None = None
    gate_timeout: float = 5.0
    holds_gate: bool = False
    checkpointer: WalCheckpointer | None = None
    # Whether the database has migration 0009's head trigger (`put.has_head_trigger`):
    # None until the first put on this connection asks.
    head_trigger: bool | None = None

    def gated(self, sql: str, run: Callable[[], T]) -> T:
        self._gate_for(sql)
        try:
            return run()
        finally:
            self._after_statement()

    def _gate_for(self, sql: str) -> None:
        """Pass the write gate before a statement that starts a write transaction."""
        gate = self.gate
        if gate is not None and not self.holds_gate and not self.in_transaction \
                and starts_write(sql):
            self.holds_gate = gate.acquire(self.gate_timeout)

    def _after_statement(self) -> None:
        if self.holds_gate and not self.in_transaction:
            self._let_go()

    def _let_go(self) -> None:
        self.holds_gate = False
        assert self.gate is not None
        self.gate.release()
        if self.checkpointer is not None:
            self.checkpointer.note_write()

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        # `gated` without its closure (every put's one statement comes this way)
        self._gate_for(sql)
        try:
            return sqlite3.Connection.execute(self, sql, *args)
        finally:
            self._after_statement()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if self.holds_gate and not self.in_transaction:
                self._let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            if self.holds_gate and not self.in_transaction:
                self._let_go()

    def close(self) -> None:
        try:
            super().close()  # an open transaction is rolled back
        finally:
            if self.holds_gate:
                self._let_go()


class GatedCursorWrapper(sqlite_base.SQLiteCursorWrapper):
    """Django's cursor (its parameter styles), each statement through the connection's gate."""

    def execute(self, query: str, params: Any = None) -> Any:
        return self.connection.gated(query, lambda: super(GatedCursorWrapper, self).execute(
            query, params))

    def executemany(self, query: str, param_list: Any) -> Any:
        return self.connection.gated(
            query, lambda: super(GatedCursorWrapper, self).executemany(query, param_list))


class DatabaseCreation(SQLiteCreation):
    def _destroy_test_db(self, test_database_name: str, verbosity: int) -> None:
        super()._destroy_test_db(test_database_name, verbosity)
        if not self.is_in_memory_db(test_database_name):
            try:
                os.remove(f"{os.path.realpath(test_database_name)}.writelock")
            except OSError:
                pass
            _remove_wake_directory(test_database_name)


def _remove_wake_directory(database: str) -> None:
    """The test database's idle-worker sockets (`runtime.wakeup`), gone with the database:
    its workers have stopped, what is left is stale."""
    from orchestration.runtime.wakeup import directory_for

    directory = directory_for(database)
    if os.path.islink(directory) or not os.path.isdir(directory):
        return
    try:
        for entry in os.scandir(directory):
            os.remove(entry.path)
        os.rmdir(directory)
    except OSError:
        pass


class DatabaseWrapper(sqlite_base.DatabaseWrapper):
    creation_class = DatabaseCreation

    def get_new_connection(self, conn_params: dict[str, Any]) -> GatedConnection:
        conn = super().get_new_connection({**conn_params, "factory": GatedConnection})
        # the init commands ran before the gate is set: PRAGMAs, nothing to queue for
        conn.gate = gate = gate_for(str(conn_params["database"]))
        conn.gate_timeout = float(conn_params.get("timeout", 5.0))
        if gate is not None:  # a file (WAL) database: checkpoints in the background
            init = str(self.settings_dict.get("OPTIONS", {}).get("init_command", ""))
            if "wal_autocheckpoint" not in init:  # the settings' own value wins
                conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            conn.checkpointer = checkpointer_for(os.path.realpath(str(conn_params["database"])))
        return conn

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=GatedCursorWrapper)
