"""Write-behind for the Django saver: one checkpoint write in flight on a private connection
while the caller computes the next superstep (`DjangoCheckpointSaver(durability="async")`).

Why a private connection and not Django's: a node may use the ORM between two puts, and
Django's connection must stay an ordinary connection for it; the private one is used by
nothing else.

On PostgreSQL (`SendAhead`) the calling thread sends the put's statement without waiting for
its outcome and collects the outcome at its next put or flush: the server executes and
commits superstep N while the caller computes N+1. A writer thread (`WriteBehind`, kept for
SQLite, whose writes run in-process) gained little there: woken while the caller computed, it
needed the GIL to send, so it sent only once the caller blocked on it, and each put paid two
thread hand-offs.

At most ONE write is in flight: `submit` first waits for the previous write and raises its
failure, so a crash loses at most the superstep whose write was in flight (re-run on resume
exactly like a crash during it), and a failed write (a lost lease) stops the run at its next
put, before any later superstep is written. Each write is its own statement/transaction, with
the lease fence inside it, exactly as a synchronous put.

On PostgreSQL those commits may skip the WAL flush (`synchronous_commit=False`, a worker's
default): a crash of the server can then also lose the puts of its last few hundred ms, and
`SendAhead.make_durable` waits for the flush where that matters (before a side effect).

Writers are kept per (calling thread, database alias), so savers on one thread share one
connection and one order of writes. The worker closes its writer when a run execution ends
(`DjangoCheckpointSaver.close`), as its heartbeat thread's connection goes with the run;
`close_writers()` closes every one (tests, before their database is dropped).
"""

from __future__ import annotations

import queue
import select
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = [
    "SendAhead", "WriteBehind", "Writer", "close_writer", "close_writers", "current_writer",
    "server_spoke", "writer_for",
]

Job = Callable[[Any], Any]


class WriteBehind:
    """A daemon thread running one job at a time on a connection it opens with `connect`."""

    def __init__(self, connect: Callable[[], Any], name: str) -> None:
        self._connect = connect
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Job, Future[Any]] | None] = queue.SimpleQueue()
        self._pending: Future[Any] | None = None
        self._thread: threading.Thread | None = None
        # Who handed over the write in flight (a saver): another saver on this thread
        # asks it to collect its write before sending or reading anything.
        self.owner: Any = None

    @property
    def busy(self) -> bool:
        """A write was handed over and its outcome not yet collected."""
        return self._pending is not None

    def submit(self, job: Job, owner: Any) -> Future[Any]:
        """Hand `job(connection)` to the thread for `owner`. Never two in flight: the
        caller collects the previous job (`wait`) first."""
        if self._pending is not None:
            raise RuntimeError("collect the write in flight (wait()) before submitting another")
        future: Future[Any] = Future()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._pending = future
        self.owner = owner
        self._jobs.put((job, future))
        return future

    def wait(self) -> Any:
        """The in-flight job's result (None if there is none); raises what the job raised."""
        future, self._pending, self.owner = self._pending, None, None
        return None if future is None else future.result()

    def close(self) -> None:
        """Stop the thread and close its connection (after the job in flight, if any)."""
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=30)
        self._thread = None

    def _run(self) -> None:
        connection: Any = None
        try:
            while (item := self._jobs.get()) is not None:
                job, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    if connection is None:
                        connection = self._connect()
                    future.set_result(job(connection))
                except BaseException as exc:
                    future.set_exception(exc)
                    # The connection may be broken or mid-transaction: start afresh.
                    connection = _close(connection)
        finally:
            _close(connection)


class SendAhead:
    """PostgreSQL's writer: no thread; `submit` sends the job's statement on the private
    connection (`job.send(connection)` returns the function that collects its outcome) and
    `wait` collects it. The same contract as `WriteBehind`: at most one job in flight.

    A job may commit without waiting for the WAL flush (`synchronous_commit` off for its own
    transaction, `checkpoint_sql.put_job`): the commit is visible and survives this process
    dying, but a crash of the server itself can lose it until the server's WAL writer
    flushes it (within 3 x `wal_writer_delay`, 600 ms by default) or any later synchronous
    commit on the cluster does (WAL is flushed in order). `make_durable` waits for that
    flush."""

    def __init__(self, connect: Callable[[], Any], name: str) -> None:
        self._connect = connect
        self._connection: Any = None
        self._collect: Callable[[], Any] | None = None
        self.owner: Any = None

    @property
    def busy(self) -> bool:
        return self._collect is not None

    def submit(self, job: Any, owner: Any) -> None:
        if self._collect is not None:
            raise RuntimeError("collect the write in flight (wait()) before submitting another")
        connection = self._ready()
        try:
            self._collect = job.send(connection)
        except BaseException:
            # Part of the statement may be on the wire: the connection is not reusable.
            self._connection = _close(self._connection)
            raise
        self.owner = owner

    def make_durable(self) -> None:
        """Return once every job collected so far survives a crash of the server too: a
        transaction that writes one WAL record (a logical-decoding message, prefix
        "stepwise"; no table is touched) and commits synchronously, which flushes the WAL up
        to it, every earlier commit included. Collect the job in flight first."""
        if self._collect is not None:
            raise RuntimeError("collect the write in flight (wait()) before making it durable")
        connection = self._ready()
        try:
            connection.execute(_DURABLE_SQL)
        except BaseException:
            self._connection = _close(self._connection)
            raise

    def _ready(self) -> Any:
        """The connection, replaced first if the server ended it while it was idle."""
        if self._connection is not None and server_spoke(self._connection):
            self._connection = _close(self._connection)
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def wait(self) -> Any:
        collect, self._collect, self.owner = self._collect, None, None
        if collect is None:
            return None
        try:
            return collect()
        except BaseException:
            self._connection = _close(self._connection)
            raise

    def close(self) -> None:
        """Collect the job in flight (its outcome dropped) and close the connection."""
        try:
            self.wait()
        except Exception:  # noqa: S110 - dropped, as close_writers documents
            pass
        self._connection = _close(self._connection)


Writer = WriteBehind | SendAhead

# `synchronous_commit` set for this statement's own transaction only.
_DURABLE_SQL = (
    "SELECT set_config('synchronous_commit', 'on', true),"
    " pg_logical_emit_message(true, 'stepwise', 'durable')"
)


def server_spoke(connection: Any) -> bool:
    """Whether an idle psycopg connection is closed, or its socket has something to read
    (or is gone). An idle connection is sent nothing unasked but the server's goodbye: after
    a PostgreSQL restart or a terminated backend its FATAL message and end-of-file wait
    there. The kernel answers in ~5 us, no round trip. Used for a writer a worker keeps
    between runs (`tasks.keep_writer_between_runs`: replaced rather than failing the run's
    first put) and for the connection pool's check (`config.dbpool`)."""
    if connection.closed:
        return True
    try:
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _close(connection: Any) -> None:  # always None, for `conn = _close(conn)`
    if connection is not None:
        try:
            connection.close()
        except Exception:  # noqa: S110 - closing a connection that already failed
            pass
    return None


class _Writers(threading.local):
    """This thread's writers by alias; None until its first. A class default, not
    `getattr(_local, "writers", None)`: on a thread with no writer (a worker's every put on
    SQLite asks) that raised and caught an AttributeError, ~5k instructions a put."""

    writers: dict[str, Writer] | None = None


_local = _Writers()
_all: list[Writer] = []
_all_lock = threading.Lock()


def writer_for(alias: str, connect: Callable[[], Any], *, send_ahead: bool = False) -> Writer:
    """This thread's writer for database `alias` (created on first use): `SendAhead` if
    `send_ahead` (PostgreSQL), else a `WriteBehind` thread."""
    writers = _local.writers
    if writers is None:
        writers = _local.writers = {}
    writer = writers.get(alias)
    if writer is None:
        kind = SendAhead if send_ahead else WriteBehind
        writer = writers[alias] = kind(connect, f"stepwise-writer-{alias}")
        with _all_lock:
            _all.append(writer)
    return writer


def current_writer(alias: str) -> Writer | None:
    """This thread's writer for `alias` if it has one (none is created)."""
    writers = _local.writers
    return None if writers is None else writers.get(alias)


def close_writer(alias: str) -> None:
    """Close this thread's writer for `alias` and forget it (a later write opens another)."""
    writers = _local.writers
    writer = None if writers is None else writers.pop(alias, None)
    if writer is not None:
        writer.close()
        with _all_lock:
            if writer in _all:
                _all.remove(writer)


def close_writers() -> None:
    """Close every writer's connection (their threads stop); a later write opens a new one.
    Writes in flight are finished first; their outcome is dropped, so flush savers before."""
    with _all_lock:
        writers = list(_all)
    for writer in writers:
        writer.close()
