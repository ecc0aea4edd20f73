"""WAL checkpoints in the background (orchestration/runtime/sqlite_backend/checkpointer.py):
a commit leaves the WAL to the file's checkpointer thread, which copies it back soon after."""

from __future__ import annotations

import os
import sqlite3
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


def test_a_commit_is_copied_back_into_the_database_soon_after_without_the_writer() -> None:
    connection.ensure_connection()
    checkpointer = connection.connection.checkpointer
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE ckpt_rows (n INTEGER)")
    before = checkpointer.checkpoints
    with connection.cursor() as cursor:
        for n in range(50):  # 50 autocommit transactions, each lets the gate go
            cursor.execute("INSERT INTO ckpt_rows VALUES (%s)", [n])
    deadline = time.monotonic() + 30
    while checkpointer.checkpoints == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checkpointer.checkpoints > before
    # The rows are in the database file itself: a connection that reads the file with the
    # WAL ignored (a copy of the main file alone) sees them.
    copy = Path(_database() + ".copy")
    try:
        copy.write_bytes(Path(_database()).read_bytes())
        conn = sqlite3.connect(copy)
        try:
            assert conn.execute("SELECT count(*) FROM ckpt_rows").fetchone()[0] == 50
        finally:
            conn.close()
    finally:
        copy.unlink(missing_ok=True)


def test_a_removed_database_file_is_not_created_again_by_its_checkpointer(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "gone.sqlite3")
    WalCheckpointer(path).checkpoint()
    assert not os.path.exists(path)
