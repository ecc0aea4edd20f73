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
        self._pid = 0
        self.checkpoints = 0  # run so far (for tests and curious operators)

    def note_write(self) -> None:
        """A write transaction ended: checkpoint soon."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        if not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with _LOCK:
            if self._thread is not None and self._pid == os.getpid():
                return
            # A forked child has no copy of its parent's thread: it starts its own.
            self._wake = threading.Event()
            self._pid = os.getpid()
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
        """One PASSIVE checkpoint, on a connection opened for it: a database file replaced
        meanwhile (a test database made again) is the new file, and a removed one is not
        created again (`mode=rw`)."""
        try:
            conn = sqlite3.connect(
                f"file:{pathname2url(self.path)}?mode=rw", uri=True, isolation_level=None
            )
        except sqlite3.Error:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error:
            pass  # the connections' automatic checkpoint is the backstop
        finally:
            conn.close()


def checkpointer_for(path: str) -> WalCheckpointer:
    """The process's checkpointer for the database file at `path` (a real path)."""
    with _LOCK:
        found = _CHECKPOINTERS.get(path)
        if found is None:
            found = _CHECKPOINTERS[path] = WalCheckpointer(path)
        return found
