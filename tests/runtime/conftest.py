"""Fixtures for the Django runtime tests: real `db_worker` subprocesses on the test database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import LEASE_SECONDS, ROOT, TEST_GRAPHS, Worker, subprocess_env


@pytest.fixture(autouse=True)
def _test_graphs(settings: Any) -> None:
    settings.STEPWISE_GRAPHS = {**settings.STEPWISE_GRAPHS, **TEST_GRAPHS}
    settings.STEPWISE_LEASE_SECONDS = LEASE_SECONDS


@pytest.fixture
def start_worker(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start `manage.py db_worker` (or `command`) subprocesses on the test database, polling
    every `interval` seconds, taking tasks of `queues` (every queue by default); all stopped
    at teardown."""
    workers: list[Worker] = []

    def start(command: str = "db_worker", interval: float = 0.1, queues: str = "*",
              **extra_env: str) -> Worker:
        env = subprocess_env()
        env.update(extra_env)
        log = tmp_path / f"worker-{len(workers)}.log"
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), command, "--queue-name", queues,
             "--interval", str(interval), "--no-startup-delay", "--no-reload", "-v", "1"],
            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        worker = Worker(process, log)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


