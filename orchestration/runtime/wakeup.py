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
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.db import connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "stepwise_tasks"

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
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, instance.queue_name])


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

    def __init__(self, using: str = "default", queues: Iterable[str] | None = None) -> None:
        self.using = using
        # a PostgreSQL notification names the task's queue: a worker of other queues sleeps on
        # (SQLite's datagram names none: every worker checks once)
        self.queues = None if queues is None else frozenset(queues)
        self._conn: Any = None
        self._socket: socket.socket | None = None
        self._socket_path: Path | None = None
        self._listen()

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
            self._conn.execute(f"LISTEN {CHANNEL}")
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
        """True if woken by a notification. Notifications that piled up while the worker ran
        a task wake the next wait at once: one extra check, then the worker sleeps again."""
        if self._socket is not None:
            return self._wait_datagram(self._socket, timeout)
        if self._conn is None:
            time.sleep(timeout)
            self._listen()  # the server may be back: listen again for the next wait
            return False
        import psycopg

        try:
            return self._wait_notification(self._conn, timeout)
        except psycopg.Error:
            logger.warning("lost the LISTEN connection; polling until it is back", exc_info=True)
            self.close()
            return False

    def _wait_notification(self, conn: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            notices = list(conn.notifies(timeout=left, stop_after=1))
            if not notices:
                return False
            if self.queues is None or notices[0].payload in self.queues:
                return True
        return False

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
                self._conn.close()
            finally:
                self._conn = None
