"""Checkpoint ids: opaque, sortable by creation time, unique across threads and processes."""

from __future__ import annotations

import subprocess
import sys
import threading

from orchestration.checkpoint.base import new_checkpoint_id

NEW_IDS = "from orchestration.checkpoint.base import new_checkpoint_id as n; print(n(), n())"


def test_ids_sort_in_creation_order_even_within_one_nanosecond() -> None:
    ids = [new_checkpoint_id() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_from_many_threads_never_collide() -> None:
    found: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [new_checkpoint_id() for _ in range(2_000)]
        with lock:
            found.extend(mine)

    workers = [threading.Thread(target=make) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(found)) == 8_000


def test_another_process_draws_another_suffix() -> None:
    out = subprocess.run(
        [sys.executable, "-c", NEW_IDS], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0][16:] == out[1][16:]  # one suffix per process...
    assert out[0][16:] != new_checkpoint_id()[16:]  # ...and another one here


FORK_AND_COMPARE = """
import os
from orchestration.checkpoint.base import new_checkpoint_id
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write_end, new_checkpoint_id().encode())
    os._exit(0)
os.waitpid(pid, 0)
print(os.read(read_end, 64).decode(), new_checkpoint_id())
"""


def test_a_forked_child_does_not_reuse_its_parents_suffix() -> None:
    # Forked from a fresh single-threaded interpreter: forking pytest itself could deadlock.
    child, parent = subprocess.run(
        [sys.executable, "-c", FORK_AND_COMPARE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert child[16:] != parent[16:]
