"""WAL checkpoints in the background (orchestration/runtime/sqlite_backend/checkpointer.py):
a commit leaves the WAL to the file's checkpointer thread, which copies it back soon after."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from orchestration.runtime.sqlite_backend.checkpointer import (
    BACKSTOP_PAGES,
    WalCheckpointer,
    checkpointer_for,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's WAL"),
]


def _database() -> str:
    return os.path.realpath(connection.settings_dict["NAME"])


def test_our_connections_leave_the_wal_to_the_background_checkpointer() -> None:
    connection.ensure_connection()
    raw = connection.connection
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    assert raw.checkpointer is checkpointer_for(_database())


# Counts the rows of a table in a database file itself, the WAL ignored: it reads the main
# file into a copy (with no -wal beside it) and counts there. Prints -1 while the table is not
# there (or the copy caught a page being written).
_COUNT_IN_COPY = """
import os, sqlite3, sys, tempfile
path, table = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    data = f.read()
fd, copy = tempfile.mkstemp(suffix=".sqlite3")
try:
    os.write(fd, data)
    os.close(fd)
    conn = sqlite3.connect(copy)
    try:
        print(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.DatabaseError:
        print(-1)
    finally:
        conn.close()
finally:
    os.remove(copy)
"""


def _rows_in_file_alone(path: str | Path, table: str) -> int | None:
    """Rows of `table` in the database file at `path` itself, the WAL ignored; None while the
    table is not there.

    Read by a child process, never by this one: closing any descriptor this process has on
    the file drops every POSIX lock the process holds on it, SQLite's own included (fcntl
    locks belong to the process and the file, not to the descriptor). A connection left
    without its shared lock looks absent to other processes, and the last of them to close
    deletes the WAL and shared memory under it: "disk I/O error", then a malformed
    database, for every test after (seen when the suite ran on a busy machine)."""
    found = subprocess.run(
        [sys.executable, "-c", _COUNT_IN_COPY, str(path), table],
        capture_output=True, text=True, check=True,
    )
    rows = int(found.stdout)
    return None if rows < 0 else rows


def _rows_in_main_file() -> int | None:
    return _rows_in_file_alone(_database(), "ckpt_rows")


def test_a_commit_is_copied_back_into_the_database_soon_after_without_the_writer() -> None:
    connection.ensure_connection()
    checkpointer = connection.connection.checkpointer
    before = checkpointer.checkpoints
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE ckpt_rows (n INTEGER)")
        for n in range(50):  # 50 autocommit transactions, each lets the gate go
            cursor.execute("INSERT INTO ckpt_rows VALUES (%s)", [n])
    # Far below the connections' automatic checkpoint: only the checkpointer copies them.
    # The checkpointer counts a checkpoint after its copy: wait for the count too, or a read
    # between the two sees the rows without it (seen 1 run in 6 on a loaded machine).
    deadline = time.monotonic() + 30
    while ((_rows_in_main_file() != 50 or checkpointer.checkpoints <= before)
           and time.monotonic() < deadline):
        time.sleep(0.02)
    assert _rows_in_main_file() == 50
    assert checkpointer.checkpoints > before


def test_a_removed_database_file_is_not_created_again_by_its_checkpointer(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "gone.sqlite3")
    WalCheckpointer(path).checkpoint()
    assert not os.path.exists(path)


def test_a_database_whose_path_has_uri_characters_is_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "odd ?#% name.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE t (n INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
        checkpointer = WalCheckpointer(str(path))
        checkpointer.checkpoint()
        assert checkpointer.checkpoints == 1
        busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert log == done  # nothing was left to copy
    finally:
        conn.close()
    assert not (tmp_path / "odd ").exists()  # not a file cut at the '?'


def _wal_file(path: Path) -> sqlite3.Connection:
    """A WAL database at `path` whose writer never checkpoints by itself."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (n INTEGER)")
    return conn


def _rows_in(path: Path) -> int:
    """Rows of `t` in the database file itself, the WAL ignored."""
    rows = _rows_in_file_alone(path, "t")
    assert rows is not None
    return rows


def test_the_checkpoint_connection_is_kept_until_the_file_is_replaced(tmp_path: Path) -> None:
    """Opening a connection costs SQLite a read of the whole schema: the checkpointer keeps
    its connection from one checkpoint to the next, and opens a new one when the file at
    its path is another file (a test database made again)."""
    path = tmp_path / "kept.sqlite3"
    writer = _wal_file(path)
    checkpointer = WalCheckpointer(str(path))
    try:
        writer.execute("INSERT INTO t VALUES (1)")
        checkpointer.checkpoint()
        first = checkpointer._conn
        writer.execute("INSERT INTO t VALUES (2)")
        checkpointer.checkpoint()
        assert checkpointer._conn is first is not None
        assert _rows_in(path) == 2
        writer.close()

        for name in ("kept.sqlite3", "kept.sqlite3-wal", "kept.sqlite3-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        writer = _wal_file(path)  # the same path, another file
        writer.execute("INSERT INTO t VALUES (3)")
        checkpointer.checkpoint()
        assert checkpointer._conn is not first
        assert checkpointer.checkpoints == 3
        assert _rows_in(path) == 1  # the new file was checkpointed, not the old one
    finally:
        writer.close()
        checkpointer._close()


# The fork is the point: a process with a checkpointer thread, forked (as a worker forks).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_checkpoints_with_its_own_thread_and_gate(tmp_path: Path) -> None:
    """A child forked after writes has no copy of its parent's checkpointer thread, and
    shares its parent's gate descriptor (hence its flock): its first write starts its own
    thread and opens its own descriptor, noticed at the fork, not by a getpid() per write."""
    from orchestration.runtime.sqlite_backend.gate import gate_for

    path = tmp_path / "forked.sqlite3"
    writer = _wal_file(path)
    checkpointer = checkpointer_for(os.path.realpath(path))
    gate = gate_for(str(path))
    assert gate is not None
    try:
        assert gate.acquire(1.0)
        gate.release()
        checkpointer.note_write()
        parents = (checkpointer._thread, gate._fd)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            code = 1
            try:
                assert checkpointer._thread is None and gate._fd is None
                assert gate.acquire(1.0)
                gate.release()
                conn = sqlite3.connect(path)
                conn.execute("INSERT INTO t VALUES (1)")
                conn.commit()
                checkpointer.note_write()
                deadline = time.monotonic() + 10
                while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                fresh = checkpointer._thread not in (None, parents[0])
                code = 0 if fresh and gate._fd != parents[1] and checkpointer.checkpoints else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert (checkpointer._thread, gate._fd) == parents  # the parent's are untouched
        assert _rows_in(path) == 1  # the child's checkpoint copied its row into the file
    finally:
        writer.close()
        checkpointer._close()
