"""Tasks for the worker tests, importable by worker subprocesses (tests/runtime is on their
PYTHONPATH)."""

from __future__ import annotations

from django.tasks import task


@task()
def refuse(reason: str) -> None:
    """A task that fails: its own error, raised inside its execution."""
    raise ValueError(reason)
