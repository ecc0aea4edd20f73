"""Helpers for the worker tests (a module, not conftest, so tests can import them)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

# Leases in the worker tests: short, so stalls show up fast; the heartbeat renews every 1/3.
LEASE_SECONDS = 1.0
ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TEST_GRAPHS = {
    "steps": "runtime_graphs:graph",
    "substeps": "runtime_graphs:subgraph_steps_graph",
    "reviewed": "runtime_graphs:reviewed_graph",
    "reviewed_gated": "runtime_graphs:gated_reviewed_graph",
    "parallel": "runtime_graphs:parallel_graph",
}


def database_env() -> dict[str, str]:
    """Environment that points a subprocess at this test's database."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SQLITE_PATH": str(db["NAME"])}
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return {"DATABASE_URL": f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"}


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30, what: str = "condition",
             workers: list[Worker] | tuple[Worker, ...] = ()) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        dead = [w for w in workers if w.process.poll() is not None]
        if dead:
            logs = "\n".join(f"--- worker {w.pid}:\n{w.output()[-3000:]}" for w in dead)
            raise AssertionError(f"a worker exited while waiting for {what}\n{logs}")
        time.sleep(0.05)
    logs = "\n".join(f"--- worker {w.pid}:\n{w.output()[-3000:]}" for w in workers)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")


def log_lines(path: Path) -> list[str]:
    """Node names recorded in a side-effect log (without the pids)."""
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def wait_for_status(run: Any, status: str, *, workers: Any = (), timeout: float = 30) -> None:
    """Wait until `run` reaches `status`; fail at once if it ends in another final status."""
    from orchestration.runtime.models import Run

    def reached() -> bool:
        current, error = Run.objects.values_list("status", "error").get(pk=run.pk)
        if current != status and current in (*Run.FINISHED, Run.Status.WAITING):
            raise AssertionError(f"run {run.pk} ended {current}, not {status}: {error}")
        return current == status

    wait_for(reached, timeout=timeout, what=f"run {run.pk} to be {status}", workers=workers)


def subprocess_env() -> dict[str, str]:
    """Environment for a Django subprocess on this test's database, with the test graphs."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH"}}
    env.update(database_env())
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "STEPWISE_EXTRA_GRAPHS": ",".join(f"{k}={v}" for k, v in TEST_GRAPHS.items()),
        "STEPWISE_LEASE_SECONDS": str(LEASE_SECONDS),
        "PYTHONPATH": os.pathsep.join(
            [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            + [str(HERE), str(ROOT)]
        ),
        "LOG_LEVEL": "WARNING",
    })
    return env


def leased_run(thread_id: str) -> tuple[Any, Any]:
    """A new thread with a RUNNING run and the `Lease` that fences its writes (token "token")."""
    from orchestration.runtime import models
    from orchestration.runtime.leases import Lease

    thread = models.Thread.objects.create(thread_id=thread_id)
    run = models.Run.objects.create(
        thread=thread, kind=models.Run.Kind.START, status=models.Run.Status.RUNNING,
        lease_token="token", attempts=1,
    )
    return run, Lease(run_id=run.pk, token="token", seconds=30.0)


def pending_write_channels(thread_id: str) -> list[str]:
    """The channels of the thread's committed pending writes, in write order, read on Django's
    connection (what another process would see)."""
    from orchestration.runtime import models

    return list(
        models.PendingWrite.objects.filter(checkpoint__thread__thread_id=thread_id)
        .order_by("id").values_list("channel", flat=True)
    )


def checkpoint_count(thread_id: str) -> int:
    from orchestration.runtime import models

    return models.Checkpoint.objects.filter(thread__thread_id=thread_id).count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children_of() -> dict[int, list[int]]:
    """pid -> its children's pids, read from /proc."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (honcho starts each child in a session of its own, so
    killing honcho's process group would leave them running)."""
    kids, found, todo = children_of(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_tree(process: subprocess.Popen[bytes]) -> None:
    """Stop `process` (TERM, then KILL) and SIGKILL whatever it left below it."""
    tree = descendants(process.pid)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finished_thread(tmp_path: Path, days_ago: float = 40) -> Any:
    """A `steps` thread run to its end in-process, last changed `days_ago` days ago."""
    from datetime import timedelta

    from django.utils import timezone

    from orchestration.runtime.models import Run, Thread
    from orchestration.runtime.runs import run_inline, start_thread

    gate = tmp_path / "gate"
    gate.touch()
    with run_inline():
        run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(gate)},
                           user=None)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    Thread.objects.filter(pk=run.thread_id).update(
        updated_at=timezone.now() - timedelta(days=days_ago))
    return Thread.objects.get(pk=run.thread_id)
