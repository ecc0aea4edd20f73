"""Fixtures for the Django runtime tests: real `db_worker` subprocesses on the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import LEASE_SECONDS, Worker, database_env

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TEST_GRAPHS = {"steps": "runtime_graphs:graph"}


@pytest.fixture(autouse=True)
def _test_graphs(settings: Any) -> None:
    settings.STEPWISE_GRAPHS = {**settings.STEPWISE_GRAPHS, **TEST_GRAPHS}
    settings.STEPWISE_LEASE_SECONDS = LEASE_SECONDS


@pytest.fixture
def start_worker(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start `manage.py db_worker` (or `command`) subprocesses on the test database, polling
    every `interval` seconds; all stopped at teardown."""
    workers: list[Worker] = []

    def start(command: str = "db_worker", interval: float = 0.1) -> Worker:
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
        log = tmp_path / f"worker-{len(workers)}.log"
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), command, "--interval", str(interval),
             "--no-startup-delay", "--no-reload", "-v", "1"],
            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        worker = Worker(process, log)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


