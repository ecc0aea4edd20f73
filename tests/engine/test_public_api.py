"""The package surface: exports, no Django on import, the tutorial runs as written."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import orchestration
import orchestration.reducers

ROOT = Path(__file__).resolve().parents[2]


def test_orchestration_exports_the_contract_names() -> None:
    expected = {
        "StateGraph", "START", "END", "Command", "Send", "interrupt", "Interrupt", "RetryPolicy",
        "StateSnapshot", "CompiledGraph", "OrchestrationError", "GraphValidationError",
        "InvalidUpdateError", "GraphRecursionError", "CheckpointNotFound", "ThreadBusyError",
        "SerializationError", "NodeError", "Overwrite",
    }
    assert expected <= set(orchestration.__all__)
    for name in expected:
        assert getattr(orchestration, name) is not None


def test_overwrite_is_a_frozen_value_wrapping_its_value() -> None:
    from orchestration import Overwrite

    wrapped = Overwrite(["kept"])
    assert wrapped.value == ["kept"] and wrapped == Overwrite(["kept"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        wrapped.value = []  # type: ignore[misc]


def test_serialization_error_has_field_node_and_step_attributes() -> None:
    error = orchestration.SerializationError("x", field="f", nodes=["n"], step=3)
    assert (str(error), error.field, error.node, error.nodes, error.step) == (
        "x", "f", "n", ("n",), 3
    )
    bare = orchestration.SerializationError("y")
    assert (bare.field, bare.node, bare.nodes, bare.step) == (None, None, (), None)


def test_reducers_module_exports_topic_last_value_merge() -> None:
    assert {"topic", "last_value", "merge"} <= set(orchestration.reducers.__all__)


def test_importing_the_engine_loads_no_django_module() -> None:
    code = (
        "import sys, orchestration, orchestration.reducers, orchestration.checkpoint;"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_tutorial_runs_as_written_in_a_plain_interpreter() -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tutorial.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "fork" in done.stdout


def test_tutorial_runs_with_the_sqlite_saver(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tutorial.py"), str(tmp_path / "t.db")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
