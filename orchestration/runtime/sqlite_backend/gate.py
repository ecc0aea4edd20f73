"""A write gate for SQLite: writers of every process on one database file queue in the kernel.

SQLite lets one writer at a time hold its write lock; the others wait in its busy handler,
which sleeps in growing steps (1, 2, 5, ... up to 100 ms) and retries. A writer that has
waited a while sleeps 100 ms at a time, and a writer that arrives while it sleeps takes the
lock first: under load (a server with a hundred request threads that each write a little, a
task worker that writes a checkpoint per superstep) a waiting writer loses almost every race,
and the worker's runs sat 30 s in the queue. This gate puts a blocking `flock` on a side file
(`<database>.writelock`, mode 0600 like the database) in front of the write lock: the kernel
wakes a waiter as soon as the holder lets go, so a waiting writer gets the lock within one
transaction of its turn instead of within one lucky retry.

Two levels, because `flock` belongs to an open file description, not to a thread:

- in a process, a `threading.Lock` (waited on with a timeout: the busy timeout) orders the
  threads, and only its holder takes the `flock`, on the one descriptor the process has for
  that file. Threads of one process therefore never deadlock in the kernel: a thread that
  waits longer than the busy timeout (say for a transaction its own caller holds) goes on
  without the gate and meets SQLite's busy handler as before.
- between processes, the `flock`: the server process's next writer and the worker's queue on
  it in the kernel, so each process gets its turn.

The gate is advice, not correctness: SQLite's own lock still protects the data, so a process
that writes without it (the sqlite3 CLI, an old process) is merely not queued fairly.
"""

from __future__ import annotations

import fcntl
import os
import threading

_GATES: dict[str, WriteGate] = {}
_GATES_LOCK = threading.Lock()


class WriteGate:
    """The gate of one database file in this process. `acquire` before a write transaction
    begins, `release` after it ended (COMMIT, ROLLBACK or a closed connection)."""

    def __init__(self, path: str) -> None:
        self.path = path + ".writelock"
        self._threads = threading.Lock()
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        """Wait (up to `timeout` seconds for this process's other writers, then for the
        other processes' in the kernel) for the gate. False: not taken, write without it."""
        if not self._threads.acquire(True, timeout if timeout > 0 else -1):
            return False
        fd = self._fd
        try:
            fcntl.flock(fd if fd is not None else self._descriptor(), fcntl.LOCK_EX)
        except OSError:
            # no side file (a read-only directory): SQLite's busy handler alone, as before
            self._threads.release()
            return False
        return True

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _descriptor(self) -> int:
        # A forked child shares its parent's open file description, hence its flock: it
        # opens its own (`_after_fork` forgets the parent's; no getpid() per write).
        # O_CLOEXEC: a process we start must not hold ours.
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd


def gate_for(database: str) -> WriteGate | None:
    """The process's gate for the SQLite file `database`; None for in-memory databases (one
    connection, nothing to queue with)."""
    if not database or database == ":memory:" or database.startswith("file:") \
            or "mode=memory" in database:
        return None
    path = os.path.realpath(database)
    with _GATES_LOCK:
        gate = _GATES.get(path)
        if gate is None:
            gate = _GATES[path] = WriteGate(path)
        return gate


def _after_fork() -> None:
    # a thread that held a gate's lock in the parent does not exist in the child
    for gate in list(_GATES.values()):
        gate._threads = threading.Lock()
        if gate._fd is not None:
            os.close(gate._fd)  # the parent's flock lives on in the parent's descriptor
            gate._fd = None


os.register_at_fork(after_in_child=_after_fork)
