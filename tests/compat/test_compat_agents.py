"""The programs that need subgraphs, the store and custom streaming (issue 13, built on the
"agents" work): each runs on LangGraph and, with its imports changed, on Stepwise's savers."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from differences import expected
from harness import PROGRAMS, observe

AGENT_PROGRAMS = sorted(p.stem for p in PROGRAMS.glob("agents_*.py"))


@cache
def reference(name: str) -> tuple[tuple[str, Any], ...]:
    from langgraph.checkpoint.memory import InMemorySaver

    return tuple(observe(name, "langgraph", InMemorySaver()))


@pytest.mark.parametrize("name", AGENT_PROGRAMS)
def test_program_runs_on_langgraph(name: str) -> None:
    assert reference(name), f"{name} observed nothing"


@pytest.mark.parametrize("name", AGENT_PROGRAMS)
def test_program_observes_the_same_on_stepwise(name: str, saver: Any) -> None:
    want = dict(reference(name))
    got = dict(observe(name, "stepwise", saver))
    assert list(got) == list(want)
    for label in want:
        lg, sw = expected(name, label, want[label])
        assert want[label] == lg
        assert got[label] == sw, f"{name}: {label!r} differs from LangGraph"
