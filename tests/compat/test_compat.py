"""LangGraph programs give the same observations on Stepwise as on LangGraph (values,
interrupts, stream chunks, exception types), after `differences.py`'s normalisation."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from differences import EXPECTED, IMPORTS, expected
from harness import PROGRAMS, load, observe, rewrite_imports

langgraph = pytest.importorskip(
    "langgraph", reason="the compatibility suite needs LangGraph: pip install -e '.[bench]'"
)

PROGRAM_NAMES = sorted(
    p.stem for p in PROGRAMS.glob("*.py") if p.stem not in ("scripted",) and not
    p.stem.startswith("agents_")
)


@cache
def reference(name: str) -> tuple[tuple[str, Any], ...]:
    """What the program observes on LangGraph (its own in-memory saver)."""
    from langgraph.checkpoint.memory import InMemorySaver

    return tuple(observe(name, "langgraph", InMemorySaver()))


def test_the_suite_has_the_documented_programs() -> None:
    assert len(PROGRAM_NAMES) >= 8, PROGRAM_NAMES


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_only_import_lines_change(name: str) -> None:
    before = (PROGRAMS / f"{name}.py").read_text().splitlines()
    after = rewrite_imports("\n".join(before)).splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed, f"{name} imports nothing from LangGraph"
    for old, new in changed:
        assert old.lstrip().startswith("from ") and new.lstrip().startswith("from ")
        assert old.split(" import ")[1] == new.split(" import ")[1]
        assert any(f"from {k} import" in old for k in IMPORTS)


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_program_observes_the_same_on_stepwise(name: str, saver: Any) -> None:
    want = dict(reference(name))
    got = dict(observe(name, "stepwise", saver))
    assert list(got) == list(want), "the program observed different things"
    for label in want:
        lg, sw = expected(name, label, want[label])
        assert want[label] == lg, f"LangGraph no longer behaves as EXPECTED says: {label}"
        assert got[label] == sw, f"{name}: {label!r} differs from LangGraph"


def test_declared_differences_name_real_programs() -> None:
    for program, label in EXPECTED:
        assert program in PROGRAM_NAMES
        assert label in dict(reference(program))


def test_rewriting_refuses_an_unmapped_langgraph_import() -> None:
    with pytest.raises(AssertionError, match="langgraph.prebuilt"):
        rewrite_imports("from langgraph.prebuilt import create_react_agent\n")


def test_loaded_programs_use_the_engine_asked_for() -> None:
    assert load("time_travel", "stepwise").StateGraph.__module__.startswith("orchestration")
    assert load("time_travel", "langgraph").StateGraph.__module__.startswith("langgraph")
