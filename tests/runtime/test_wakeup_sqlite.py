"""SQLite's wake-up: an idle worker's Unix datagram socket, sent a byte when an enqueue commits.

Real sockets, real worker processes, the real enqueue paths (`runs.start_thread`, which
writes the task row by `taskrow.insert_task`, and the Tasks API's `enqueue`).
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from runtime_helpers import wait_for

from orchestration.runtime.models import Run
from orchestration.runtime.runs import start_thread
from orchestration.runtime.wakeup import Waiter, directory_for, wake_directory

pytestmark = [
    pytest.mark.django_db(transaction=True),  # on_commit callbacks run on real commits
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's wake-up"),
]

EXPENSE = {
    "expense_id": 1,
    "employee": "Eve",
    "vendor": "Hotel",
    "amount": Decimal("500.00"),
    "description": "hotel",
}


@pytest.fixture
def waiter() -> Any:
    waiting = Waiter()
    yield waiting
    waiting.close()


def sockets() -> list[Path]:
    directory = wake_directory()
    assert directory is not None
    return sorted(directory.glob("*.sock")) if directory.exists() else []


def test_waiter_is_woken_at_once_by_a_committed_enqueue(waiter: Waiter) -> None:
    assert waiter.listening
    start_thread("expense", EXPENSE, user=None)
    began = time.monotonic()
    assert waiter.wait(10)
    assert time.monotonic() - began < 1


def test_enqueue_through_the_tasks_api_wakes_the_waiter(waiter: Waiter) -> None:
    from worker_tasks import refuse

    refuse.enqueue("nobody runs it")
    assert waiter.wait(10)


def test_a_rolled_back_enqueue_wakes_nobody(waiter: Waiter) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        start_thread("expense", EXPENSE, user=None)
        raise RuntimeError("the decision failed after queueing its run")
    assert not Run.objects.exists()
    assert not waiter.wait(0.5)


def test_an_enqueue_inside_a_transaction_wakes_only_at_its_commit(waiter: Waiter) -> None:
    with transaction.atomic():
        start_thread("expense", EXPENSE, user=None)
        assert not waiter.wait(0.3)  # the row is not visible to a worker yet
    assert waiter.wait(10)


def test_wake_ups_that_piled_up_cost_one_extra_check(waiter: Waiter) -> None:
    for i in range(5):
        start_thread("expense", {**EXPENSE, "expense_id": i}, user=None)
    assert waiter.wait(10)
    assert not waiter.wait(0.2)


def test_a_killed_workers_stale_socket_does_not_break_enqueueing(
    start_worker: Any, waiter: Waiter
) -> None:
    worker = start_worker("stepwise_worker", interval=30)
    mine = [path for path in sockets() if path.name.startswith(f"{os.getpid()}-")]
    wait_for(lambda: len(sockets()) == 2, what="the worker's socket", workers=[worker])
    stale = next(path for path in sockets() if path not in mine)
    worker.kill()  # SIGKILL: its socket file stays, nobody reads it
    assert stale.exists()

    run = start_thread("expense", EXPENSE, user=None)

    assert Run.objects.filter(pk=run.pk).exists()
    assert waiter.wait(10)  # the live waiter is still woken
    assert not stale.exists()  # the refused send removed the dead worker's socket


def test_a_stopped_worker_removes_its_socket(start_worker: Any) -> None:
    worker = start_worker("stepwise_worker", interval=30)
    wait_for(lambda: sockets(), what="the worker's socket", workers=[worker])
    assert "woken by a datagram on enqueue" in worker.output()
    worker.stop()
    assert sockets() == []


def test_wake_directory_and_sockets_are_private(waiter: Waiter) -> None:
    directory = wake_directory()
    assert directory is not None
    assert directory == Path(f"{os.path.realpath(connection.settings_dict['NAME'])}-wake")
    assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o700
    (path,) = sockets()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600


def test_a_loosened_wake_directory_is_tightened_again(waiter: Waiter) -> None:
    directory = wake_directory()
    assert directory is not None
    os.chmod(directory, 0o755)  # noqa: S103 - the point: loosened, then tightened
    start_thread("expense", EXPENSE, user=None)
    assert waiter.wait(10)
    assert stat.S_IMODE(os.lstat(directory).st_mode) == 0o700


def test_a_database_path_too_long_for_af_unix_gets_a_short_directory(tmp_path: Path) -> None:
    database = str(tmp_path / ("d" * 120) / "stepwise.sqlite3")
    directory = directory_for(database)
    assert directory.parent == Path(tempfile.gettempdir())
    assert directory == directory_for(database)  # every process agrees on it
    assert directory != directory_for(database + "2")
    directory.mkdir(mode=0o700)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(directory / f"{2**22}-0123abcd.sock"))  # the longest name a worker uses
    finally:
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()


def test_a_wake_directory_that_is_a_symlink_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "db.sqlite3"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    directory_for(str(database)).symlink_to(elsewhere)
    monkeypatch.setitem(connection.settings_dict, "NAME", str(database))
    waiting = Waiter()
    try:
        assert not waiting.listening  # it polls instead
        assert list(elsewhere.iterdir()) == []
    finally:
        waiting.close()


def test_a_waiter_whose_socket_file_was_removed_binds_a_new_one(waiter: Waiter) -> None:
    (path,) = sockets()
    path.unlink()
    assert not waiter.wait(0.1)  # a poll's timeout: it notices and binds again
    (again,) = sockets()
    assert again != path
    start_thread("expense", EXPENSE, user=None)
    assert waiter.wait(10)
