"""Waking idle workers when a task is enqueued, instead of waiting for their next poll.

On PostgreSQL, saving a new task row (django-tasks-db's `DBTaskResult`) also runs
`pg_notify` on the same connection, so the notification joins the enqueueing transaction
and is delivered when it commits, never before the row is visible (a rolled-back enqueue
notifies nobody). `stepwise_worker` LISTENs on a connection of its own and waits for a
notification with its poll interval as the timeout.

On SQLite every process is on the machine that holds the database file, so the wake-up is a
one-byte datagram: each idle worker binds a Unix datagram socket of its own in a private
directory beside the file (`<database>-wake/`, mode 0700), and a committed enqueue sends a
byte to every socket there (`transaction.on_commit`: never before the row is visible, never
for a rolled-back enqueue). A dead worker's socket refuses the byte and is removed.

On PostgreSQL the idle workers take turns: only one of them (per set of queues) waits for
notifications, the others wait in PostgreSQL for its advisory lock (`Waiter`), so an enqueue
wakes one worker, not every idle one (each woken worker but one claimed nothing: a wasted
wake-up and claim per task). The notification names the task; a claim announces the row it
took (`taskclaim`), so the worker whose turn comes next claims only for tasks announced and
not known to be taken. The lock is a session's: a worker that dies holding it hands the turn
on with its connection. A worker alone in its group does none of this (the lock's two round
trips and the claim's notification per task would be its whole cost): each worker greets on
the channel when it starts listening and answers a new peer's greeting once, and takes turns
from the first greeting of a peer on (a worker that has not heard one yet listens to every
notification, as before, so a mix of the two never leaves a task unannounced).

Either way polling stays the fallback, for deferred tasks, a lost datagram or a listening
connection that dropped: a wake-up that does not arrive costs one `--interval`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import select
import socket
import stat
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from django.db import connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "stepwise_tasks"
# A claim's notification: this prefix and the id of the row it took. An enqueue's is the id.
TAKEN = "taken "
# A listening worker's greeting: this prefix, its group's lock key and a token of its own.
HELLO = "hello "
# Advisory lock keys of the turn to listen (`Waiter`): this, plus a hash of the worker's queues.
_TURN_LOCK_SPACE = "stepwise-worker-turn"

# AF_UNIX paths are at most 108 bytes on Linux (sun_path, with its terminating NUL); a
# worker's socket name is `<pid>-<8 hex>.sock`: 21 bytes with Linux's largest pid (2**22),
# 26 allowed.
_SUN_PATH_MAX = 107
_SOCKET_NAME_MAX = 26


def notify_task_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """`post_save` receiver for `DBTaskResult`: a new row wakes the listening workers."""
    if not created:
        return
    connection = connections[kwargs.get("using") or instance._state.db or "default"]
    if connection.vendor == "sqlite":
        wake_on_commit(connection.alias)
        return
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(instance.pk)])


def wake_directory(using: str = "default") -> Path | None:
    """Where the idle workers of SQLite database `using` bind their sockets
    (`directory_for`); None for an in-memory database (one process: nobody to wake) or
    another vendor."""
    connection = connections[using]
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return None
    return directory_for(str(connection.settings_dict["NAME"]))


def directory_for(database: str) -> Path:
    """`<database file>-wake`, resolved so that every process finds the same one whatever
    its working directory; when a socket's path there would not fit AF_UNIX's limit, a
    directory under the system's temp dir named by a hash of the database's path."""
    database = os.path.realpath(database)
    beside = Path(f"{database}-wake")
    if len(os.fsencode(beside)) + 1 + _SOCKET_NAME_MAX <= _SUN_PATH_MAX:
        return beside
    digest = hashlib.sha256(os.fsencode(database)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"stepwise-wake-{digest}"


def _private(directory: Path) -> bool:
    """True if `directory` is a real directory of ours that only we can enter (tightened to
    0700 if it is ours but looser): one under a shared temp dir could have been made by
    another user to catch the wake-ups or to plant sockets."""
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        logger.warning(
            "%s is not a directory of this user; workers are not woken through it", directory
        )
        return False
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(directory, 0o700)
    return True


def wake_on_commit(using: str = "default") -> None:
    """Wake SQLite's idle workers once the current transaction of `using` commits (at once
    outside one); a rollback discards the wake-up with the row."""
    transaction.on_commit(lambda: wake(using), using=using)


def wake(using: str = "default") -> int:
    """Send one byte to every idle worker's socket of SQLite database `using`; how many took
    it. Never raises: the task is committed already, and a worker not woken polls it."""
    directory = wake_directory(using)
    if directory is None:
        return 0
    woken = 0
    try:
        if not _private(directory):  # no worker has bound a socket yet: nobody to wake
            return 0
        with (
            os.scandir(directory) as entries,
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender,
        ):
            sender.setblocking(False)
            for entry in entries:
                if entry.name.endswith(".sock"):
                    woken += _send(sender, entry.path)
    except OSError:
        logger.warning("could not wake the workers through %s; they poll", directory, exc_info=True)
    return woken


def _send(sender: socket.socket, path: str) -> int:
    try:
        sender.sendto(b"\x01", path)
    except (ConnectionRefusedError, FileNotFoundError):
        # a worker that died without closing its socket (SIGKILL): nobody reads it any more
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return 0
    except BlockingIOError:  # its queue is full of wake-ups it has not read: awake already
        return 0
    return 1


class Waiter:
    """Blocks until a task is announced or `timeout` passes.

    On PostgreSQL it holds one extra connection in autocommit, LISTENing on `CHANNEL`; on
    SQLite a Unix datagram socket in `wake_directory`; on anything else (or after the
    connection failed, or when the socket could not be bound) it sleeps, like the polling
    loop.
    """

    def __init__(self, using: str = "default", group: str = "") -> None:
        self.using = using
        self._conn: Any = None
        self._socket: socket.socket | None = None
        self._socket_path: Path | None = None
        # PostgreSQL: workers of the same `group` (backend and queues) take turns listening
        digest = hashlib.blake2b(f"{_TURN_LOCK_SPACE}:{group}".encode(), digest_size=8).digest()
        self._turn_key: int = struct.unpack(">q", digest)[0]
        self._my_turn = False  # this session holds the turn's lock
        self._asked = False  # its request for the lock is in PostgreSQL's queue
        self._greet_due = False
        self._token = secrets.token_hex(8)
        self._peers: set[str] = set()  # tokens of the other workers of the group heard from
        # tasks announced and not known taken; those delivered before the current claim
        self._announced: set[str] = set()
        self._covered: set[str] = set()
        self._listen()

    @property
    def taking_turns(self) -> bool:
        """Whether this worker takes turns with others (then its claims announce their row)."""
        return bool(self._peers) and self._conn is not None

    def _greet(self) -> None:
        if self._asked:  # one statement at a time: greet once the lock request is answered
            self._greet_due = True
            return
        self._greet_due = False
        self._statement(f"SELECT pg_notify('{CHANNEL}', $1)".encode(),
                        f"{HELLO}{self._turn_key} {self._token}")

    @property
    def listening(self) -> bool:
        return self._conn is not None or self._socket is not None

    def _listen(self) -> None:
        connection = connections[self.using]
        if connection.vendor == "sqlite":
            self._bind()
            return
        if connection.vendor != "postgresql":
            return
        import psycopg

        try:
            params = connection.get_connection_params()
            self._conn = psycopg.connect(**params, autocommit=True)
            # the turn's lock is waited for in a statement that may run for hours: a
            # server-wide statement_timeout must not cancel it (and drop the LISTEN with it)
            self._conn.execute("SET statement_timeout = 0")
            self._conn.execute(f"LISTEN {CHANNEL}")
            self._greet()
        except psycopg.Error:
            logger.warning("cannot LISTEN for new tasks; polling instead", exc_info=True)
            self.close()

    def _bind(self) -> None:
        directory = wake_directory(self.using)
        if directory is None:
            return
        path = directory / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
            if not _private(directory):
                sock.close()
                return
            sock.bind(os.fspath(path))
            os.chmod(path, 0o600)  # unreachable through the 0700 directory anyway
        except OSError:
            sock.close()
            logger.warning(
                "cannot bind a wake-up socket in %s; polling instead", directory, exc_info=True
            )
            return
        sock.setblocking(False)
        self._socket, self._socket_path = sock, path

    def wait(self, timeout: float) -> bool:
        """True if woken by an announced task (on PostgreSQL one not known to be taken; on
        SQLite any datagram: those that piled up while the worker ran a task wake the next
        wait at once, one extra check)."""
        if self._socket is not None:
            return self._wait_datagram(self._socket, timeout)
        if self._conn is None:
            time.sleep(timeout)
            self._listen()  # the server may be back: listen again for the next wait
            return False
        import psycopg

        try:
            return self._wait_turn(timeout)
        except psycopg.Error:
            logger.warning("lost the LISTEN connection; polling until it is back", exc_info=True)
            self.close()
            return False

    def _wait_turn(self, timeout: float) -> bool:
        """PostgreSQL: wait for the turn to listen (the lock), then for a task announced and
        not taken. Notifications keep arriving on this connection while the worker waits for
        the lock or runs a task, so nothing announced meanwhile is missed.

        The lock is asked for once and the request stays in PostgreSQL's queue across waits:
        a wait that times out (the caller polls) leaves it there, so no statement is
        cancelled (a lock_timeout would log an ERROR on the server for every one)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._peers and not self._my_turn and not self._asked:
                self._send(b"SELECT pg_advisory_lock($1::int8)", str(self._turn_key))
                self._asked = True
            if self._announced and (self._my_turn or not self._peers):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._receive(remaining)

    def _send(self, sql: bytes, param: str) -> None:
        pgconn = self._conn.pgconn
        pgconn.send_query_params(sql, [param.encode()])
        while pgconn.flush():  # 1: not all sent yet (a full socket buffer)
            select.select([], [pgconn.socket], [])

    def _receive(self, timeout: float) -> None:
        """Read what the server sent within `timeout`: notifications (every one), and the
        result of the lock request if it came."""
        pgconn = self._conn.pgconn
        new_peer = self._receive_input(timeout)
        if self._asked and not pgconn.is_busy():
            self._result()
            self._asked, self._my_turn = False, True
        self._greet_due |= new_peer  # answered so that a worker started after this one
        if self._greet_due and not self._asked:  # knows of it too
            self._greet()

    def _receive_input(self, timeout: float) -> bool:
        """Read input and note its notifications; True if a new peer greeted."""
        pgconn = self._conn.pgconn
        select.select([pgconn.socket], [], [], max(timeout, 0.0))
        pgconn.consume_input()  # raises if the connection is gone
        new_peer = False
        while (notification := pgconn.notifies()) is not None:
            payload = notification.extra.decode()
            if payload.startswith(TAKEN):
                self._announced.discard(payload[len(TAKEN):])
            elif payload.startswith(HELLO):
                new_peer |= self._heard(payload[len(HELLO):])
            else:  # a task's id (or an older enqueuer's queue name: cleared by a claim)
                self._announced.add(payload)
        return new_peer

    def _result(self) -> None:
        """Take the results of the statement sent (all there: not `is_busy`)."""
        import psycopg
        from psycopg import pq

        pgconn = self._conn.pgconn
        while (result := pgconn.get_result()) is not None:
            if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
                message = (result.error_message or b"").decode(errors="replace")
                raise psycopg.OperationalError(message)

    def _withdraw(self) -> None:
        """Cancel the lock request in flight; the turn is ours if it came first."""
        from psycopg import pq

        self._conn.cancel_safe()
        pgconn = self._conn.pgconn
        while pgconn.is_busy():
            self._receive_input(60.0)
        granted = False
        while (result := pgconn.get_result()) is not None:
            granted |= result.status == pq.ExecStatus.TUPLES_OK
        self._asked, self._my_turn = False, granted

    def _statement(self, sql: bytes, param: str) -> None:
        """One statement on the listening connection, waited for (none may be in flight)."""
        self._send(sql, param)
        while self._conn.pgconn.is_busy():
            self._greet_due |= self._receive_input(60.0)
        self._result()

    def _heard(self, greeting: str) -> bool:
        """Note a greeting; True if it is a new peer's (to be answered)."""
        key, _, token = greeting.partition(" ")
        if key != str(self._turn_key) or token == self._token or token in self._peers:
            return False
        self._peers.add(token)
        return True

    def claiming(self) -> None:
        """The worker is about to claim (PostgreSQL's one-statement claim): every task
        announced so far is in the claim's snapshot."""
        if self._conn is None:
            return
        import psycopg

        try:
            self._receive(0)
        except psycopg.Error:
            logger.warning("lost the LISTEN connection; polling until it is back", exc_info=True)
            self.close()
            return
        self._covered = set(self._announced)

    def claimed(self, found: str | None, more: bool) -> None:
        """After the claim `claiming` announced: the tasks announced before it are handled
        unless it saw another ready row (then its worker, or the next in turn, claims again);
        a worker that took a task hands the turn to listen on to the next idle worker. The
        claim's own notification, committed before the lock is released, tells that worker
        which task was taken."""
        if not found or not more:
            self._announced -= self._covered
        self._announced.discard(found or "")  # its own notification may not be sent
        self._covered = set()
        if not found or self._conn is None or not (self._my_turn or self._asked):
            return
        import psycopg

        try:
            if self._asked:
                # Polled a task while still queued for the turn (a wait that timed out): the
                # turn must not come to a busy worker. Rare (a deferred task, a notification
                # lost), so a cancelled statement is fine here.
                self._withdraw()
            if self._my_turn:
                self._statement(b"SELECT pg_advisory_unlock($1::int8)", str(self._turn_key))
                self._my_turn = False
        except psycopg.Error:
            logger.warning("lost the LISTEN connection; polling until it is back", exc_info=True)
            self.close()

    def _wait_datagram(self, sock: socket.socket, timeout: float) -> bool:
        readable, _, _ = select.select([sock], [], [], timeout)
        if not readable:
            if self._socket_path is not None and not os.path.exists(self._socket_path):
                self.close()  # its file was removed (the directory cleaned): bind a new one
                self._bind()
            return False
        while True:  # every wake-up queued so far: one check covers them all
            try:
                sock.recv(16)
            except BlockingIOError:
                return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._socket_path)
            self._socket_path = None
        if self._conn is not None:
            try:
                self._conn.close()  # releases the turn's lock with the session
            finally:
                self._conn = None
                self._my_turn = self._asked = self._greet_due = False
                self._peers.clear()  # greeted again, and answered, when listening again
                self._announced.clear()
                self._covered = set()
