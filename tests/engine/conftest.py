"""Engine test fixtures: a fresh in-memory saver and a thread config per test."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from orchestration.checkpoint import (
    BaseCheckpointSaver,
    CheckpointConfig,
    InMemoryCheckpointSaver,
    SqliteSaver,
)

_threads = itertools.count()


@pytest.fixture(params=["memory", "sqlite"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> BaseCheckpointSaver:
    """Every engine behaviour is checked against both pure-Python savers."""
    if request.param == "memory":
        return InMemoryCheckpointSaver()
    return SqliteSaver(str(tmp_path / "engine.db"))


@pytest.fixture
def config() -> CheckpointConfig:
    return CheckpointConfig(f"thread-{next(_threads)}")
