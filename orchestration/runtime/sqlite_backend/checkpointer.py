"""WAL checkpoints off the writers' path: a thread per database file copies the WAL back into
the database a moment after writes, instead of the commit that crosses SQLite's
`wal_autocheckpoint` mark doing it (with its two fsyncs) inside a request or a superstep.

With SQLite's default (a checkpoint by the committing connection once the WAL holds 1,000
pages) a worker writing a checkpoint per superstep paid for one every ~200 supersteps, in
the superstep: about 40 µs per commit on average, more than the commit itself. Here every
write transaction our connections end wakes this process's checkpointer for the file
(`note_write`), which waits `DELAY` for more commits to gather, then runs
`PRAGMA wal_checkpoint(PASSIVE)` on a connection of its own: it never waits for or blocks a
writer or a reader, and it copies each page once however many commits rewrote it meanwhile.

What it does not change: durability (a committed transaction is in the WAL either way; a
checkpoint only moves it), and the guard against an unbounded WAL: our connections keep an
automatic checkpoint, at `BACKSTOP_PAGES`, for when this thread falls behind (or a process
writes without it). A checkpoint that fails (the file was removed, a disk error) is left to
that backstop: this is an optimization, never a condition of a write.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from urllib.request import pathname2url

# How long after a write the checkpoint runs: commits in that window share its fsyncs.
DELAY = 0.05
# The connections' own automatic checkpoint, in WAL pages (4 KiB): ~40 MB of WAL.
BACKSTOP_PAGES = 10_000

_CHECKPOINTERS: dict[str, WalCheckpointer] = {}
_LOCK = threading.Lock()


class WalCheckpointer:
    """The background checkpoints of one database file in this process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # the checkpoint connection, kept while the file it opened is the file at `path`
        self._conn: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None
        self.checkpoints = 0  # run so far (for tests and curious operators)

    def note_write(self) -> None:
        """A write transaction ended: checkpoint soon."""
        if self._thread is None:
            self._start()
        if not self._wake.is_set():
            self._wake.set()

    def _forget_parent(self) -> None:
        """In a forked child: no copy of the parent's thread runs here, and the parent's
        connection is left alone (SQLite's are not to cross a fork); the next write starts
        the child's own. (Called at the fork, so writes need no getpid() to notice it.)"""
        self._thread = None
        self._conn = self._file = None
        self._wake = threading.Event()

    def _start(self) -> None:
        with _LOCK:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"sqlite-checkpoint {os.path.basename(self.path)}",
                daemon=True,
            )
            self._thread.start()

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            time.sleep(DELAY)
            wake.clear()  # commits from here on wake it again
            self.checkpoint()

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint of the file now at `path`."""
        conn = self._connection()
        if conn is None:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error:
            self._close()  # the connections' automatic checkpoint is the backstop

    def _connection(self) -> sqlite3.Connection | None:
        """The connection to the file now at `path`: the one kept from the last checkpoint
        while the file is the same one (device and inode), else a new one. Opening one
        costs SQLite a read of the whole schema at its first statement (~1.5M instructions
        for Django's), up to twenty times a second under writes. A database file replaced
        meanwhile (a test database made again) is the new file, and a removed one is not
        created again (`mode=rw`)."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._close()
            return None
        file = (st.st_dev, st.st_ino)
        if self._conn is not None and self._file == file:
            return self._conn
        self._close()
        try:
            self._conn = sqlite3.connect(
                f"file:{pathname2url(self.path)}?mode=rw", uri=True, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error:
            return None
        self._file = file
        return self._conn

    def _close(self) -> None:
        conn, self._conn, self._file = self._conn, None, None
        if conn is not None:
            conn.close()


def _after_fork() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # a thread that held it in the parent does not exist here
    for checkpointer in _CHECKPOINTERS.values():
        checkpointer._forget_parent()


os.register_at_fork(after_in_child=_after_fork)


def checkpointer_for(path: str) -> WalCheckpointer:
    """The process's checkpointer for the database file at `path` (a real path)."""
    with _LOCK:
        found = _CHECKPOINTERS.get(path)
        if found is None:
            found = _CHECKPOINTERS[path] = WalCheckpointer(path)
        return found
