"""Guards for the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROC_LOCKS = Path("/proc/locks")


def sqlite_locks_of_this_process(path: str) -> list[str]:
    """The POSIX locks this process holds on the file at `path` (lines of /proc/locks)."""
    inode = f":{os.stat(path).st_ino} "
    pid = f" {os.getpid()} "
    return [line for line in PROC_LOCKS.read_text().splitlines()
            if " POSIX " in line and pid in line and inode in line]


@pytest.fixture(autouse=True)
def _sqlite_connection_keeps_its_lock() -> Iterator[None]:
    """After each test: while Django's connection to the SQLite test database is open, this
    process still holds its shared lock on the file.

    A test that opens and closes the database file itself (say, to read its bytes) drops
    every POSIX lock the process has on it, SQLite's included. Nothing fails there: the
    test database is broken later, when a worker subprocess, seeing no other connection,
    deletes the WAL and shared memory under ours at its close, and every test after fails
    with "disk I/O error". This names the test that did it."""
    yield
    from django.db import connection

    raw = connection.connection
    name = str(connection.settings_dict.get("NAME") or "")
    if (raw is None or connection.vendor != "sqlite" or not PROC_LOCKS.exists()
            or connection.is_in_memory_db() or not os.path.exists(name)):
        return
    if raw.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        return
    assert sqlite_locks_of_this_process(name), (
        f"this process no longer holds SQLite's lock on {name} though its connection is "
        "open: something in this test opened and closed the database file outside SQLite "
        "(closing any descriptor on a file drops all the process's POSIX locks on it). "
        "Read the file from a child process instead."
    )


@pytest.fixture(scope="session")
def django_db_setup(
    django_db_setup: None, django_db_blocker: Any
) -> Iterator[None]:
    """pytest-django's test databases, dropped at the end even when threads still hold a
    connection to them. The engine runs a graph's sync nodes, and a subgraph's saver calls,
    on its pool's threads; each opens its own Django connection there, and those threads
    outlive the test. On PostgreSQL the drop then failed ("being accessed by other users")
    and the database stayed behind for the next run to clobber."""
    yield
    from django.db import DatabaseError, connections

    with django_db_blocker.unblock():
        for alias in connections:
            connection = connections[alias]
            if connection.vendor != "postgresql":
                continue
            try:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
            except DatabaseError:  # not allowed to: the drop says so itself
                pass
