"""The SQLite write gate (orchestration/runtime/sqlite_backend): writers queue on a kernel lock
in front of SQLite's write lock, and every way a transaction ends lets it go."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from orchestration.runtime.sqlite_backend.base import starts_write
from orchestration.runtime.sqlite_backend.gate import WriteGate

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the gate is SQLite's"),
]


def _database() -> str:
    return os.path.realpath(connection.settings_dict["NAME"])


def _gate_is_free() -> bool:
    """Whether another process could take the gate now (a second open file description is,
    to flock, another process)."""
    fd = os.open(_database() + ".writelock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing the only descriptor drops a lock we took
    return True


def _blocked_flock_waiters(path: str) -> int:
    """Processes (or descriptors) waiting in the kernel for a flock on `path` (/proc/locks
    lists them as `-> FLOCK ...` with the file's device:inode)."""
    inode = os.stat(path).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines
               if "->" in line and "FLOCK" in line and line.split()[-3].endswith(f":{inode}"))


def _raw(gate: WriteGate | None = None):  # noqa: ANN202 - a GatedConnection
    raw = connection.get_new_connection(connection.get_connection_params())
    raw.isolation_level = None
    if gate is not None:
        raw.gate = gate  # as if this connection were another process's
    return raw


def test_a_waiting_writer_queues_in_the_kernel_and_writes_right_after_the_holder() -> None:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE gate_order (who TEXT)")
    holder = _raw()
    other_process = _raw(WriteGate(_database()))
    done = threading.Event()

    def waiter() -> None:
        other_process.execute("INSERT INTO gate_order VALUES ('waiter')")  # autocommit
        done.set()

    try:
        holder.execute("BEGIN IMMEDIATE")
        assert holder.holds_gate
        thread = threading.Thread(target=waiter)
        thread.start()
        # the waiter sleeps in flock, not in SQLite's busy handler: the kernel wakes it
        for _ in range(500):
            if _blocked_flock_waiters(_database() + ".writelock"):
                break
            time.sleep(0.02)
        assert _blocked_flock_waiters(_database() + ".writelock") == 1
        assert not done.is_set()
        holder.execute("INSERT INTO gate_order VALUES ('holder')")
        holder.execute("COMMIT")
        assert not holder.holds_gate
        thread.join(timeout=30)
        assert done.is_set()
        rows = [r[0] for r in holder.execute("SELECT who FROM gate_order ORDER BY rowid")]
        assert rows == ["holder", "waiter"]
        assert not other_process.holds_gate and _gate_is_free()
    finally:
        holder.close()
        other_process.close()


def test_django_transactions_hold_the_gate_exactly_while_they_are_open() -> None:
    User = get_user_model()
    user = User.objects.create(username="gated")  # autocommit INSERT: taken and let go
    assert _gate_is_free()
    with transaction.atomic():
        assert not _gate_is_free()  # BEGIN IMMEDIATE took SQLite's lock: the gate first
        with transaction.atomic():  # a savepoint: the same transaction, the same turn
            user.save()
        assert not _gate_is_free()
    assert _gate_is_free()
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        user.save()
        1 / 0  # noqa: B018 - the rollback lets the gate go
    assert _gate_is_free()
    list(User.objects.all())  # a read in autocommit never queues
    assert not connection.connection.holds_gate
    with transaction.atomic():
        user.save()
        connection.close()  # closing mid-transaction rolls back and lets go
    assert _gate_is_free()
    assert User.objects.filter(username="gated").exists()


def test_threads_of_one_process_take_turns_and_a_stuck_turn_times_out() -> None:
    first, second = _raw(), _raw()
    second.gate_timeout = 0.2
    try:
        first.execute("BEGIN IMMEDIATE")
        # the process's other thread waits its (short) turn on the threading lock, then goes
        # on without the gate into SQLite's busy handler, which reports the lock as before
        second.execute("PRAGMA busy_timeout = 100")
        with pytest.raises(Exception, match="locked"):
            second.execute("BEGIN IMMEDIATE")
        assert not second.holds_gate
        first.execute("COMMIT")
        second.execute("BEGIN IMMEDIATE")
        assert second.holds_gate
        second.execute("ROLLBACK")
        assert not second.holds_gate and _gate_is_free()
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(("sql", "writes"), [
    ("SELECT 1", False), ("  select * from t", False), ("PRAGMA foo", False),
    ("SAVEPOINT s1", False), ("RELEASE SAVEPOINT s1", False), ("COMMIT", False),
    ("INSERT INTO t VALUES (1)", True), ("update t set a = 1", True), ("DELETE FROM t", True),
    ("BEGIN IMMEDIATE", True), ("CREATE TABLE x (a)", True), ("REPLACE INTO t VALUES (1)", True),
])
def test_which_statements_start_a_write(sql: str, writes: bool) -> None:
    assert starts_write(sql) is writes


def test_a_writer_killed_while_it_holds_the_gate_lets_the_next_one_through() -> None:
    """SIGKILL in the middle of a transaction (a worker killed mid-superstep): the kernel drops
    the dead process's flock and SQLite rolls its transaction back, so the next writer goes
    on instead of waiting for a turn that never ends."""
    import signal
    import subprocess
    import sys

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE gate_killed (who TEXT)")
    holder_code = (
        "import fcntl, sqlite3, sys, time\n"
        "db = sys.argv[1]\n"
        "gate = open(db + '.writelock', 'a')\n"
        "fcntl.flock(gate, fcntl.LOCK_EX)\n"
        "conn = sqlite3.connect(db, isolation_level=None)\n"
        "conn.execute('BEGIN IMMEDIATE')\n"
        "conn.execute(\"INSERT INTO gate_killed VALUES ('dead')\")\n"
        "print('holding', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", holder_code, _database()],
                              stdout=subprocess.PIPE, text=True)
    writer = _raw(WriteGate(_database()))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        assert not _gate_is_free()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        writer.execute("INSERT INTO gate_killed VALUES ('next')")  # autocommit, gated
        rows = [r[0] for r in writer.execute("SELECT who FROM gate_killed")]
        assert rows == ["next"]  # the dead writer's row was never committed
        assert _gate_is_free()
    finally:
        if holder.poll() is None:
            holder.kill()
        writer.close()
