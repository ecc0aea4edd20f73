"""LangGraph programs give the same observations on Stepwise as on LangGraph (values,
interrupts, stream chunks, exception types), after `differences.py`'s normalisation."""

from __future__ import annotations

from functools import cache
from typing import Any

# No skip when LangGraph is missing: `bin/test` installs it (the bench extra), and a suite that
# skipped itself would hide a broken install as a green run.
import langgraph  # noqa: E402, F401
import pytest
from differences import EXPECTED, IMPORTS, expected
from harness import PROGRAMS, canonical, load, observe, rewrite_imports

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
    with pytest.raises(AssertionError, match="langgraph.channels"):
        rewrite_imports("from langgraph.channels import LastValue\n")


def test_loaded_programs_use_the_engine_asked_for() -> None:
    assert load("time_travel", "stepwise").StateGraph.__module__.startswith("orchestration")
    assert load("time_travel", "langgraph").StateGraph.__module__.startswith("langgraph")


def _publishing_on(engine: str) -> Any:
    """The demo's publishing workflow (written LangGraph-style) for `engine`: on LangGraph its
    one import line becomes the two a LangGraph user writes."""
    import types
    from pathlib import Path

    import demo.workflows.publishing as publishing

    source = Path(publishing.__file__).read_text()
    if engine == "langgraph":
        line = "from orchestration import END, START, StateGraph, interrupt\n"
        assert line in source
        source = source.replace(
            line,
            "from langgraph.graph import END, START, StateGraph\n"
            "from langgraph.types import interrupt\n",
        )
    module = types.ModuleType(f"publishing_{engine}")
    import sys

    sys.modules[module.__name__] = module
    exec(compile(source, publishing.__file__, "exec"), module.__dict__)  # noqa: S102
    return module.graph


def _publishing_run(engine: str) -> list[Any]:
    if engine == "langgraph":
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.types import Command
    else:
        from orchestration import Command
        from orchestration.checkpoint import InMemorySaver
    graph = _publishing_on(engine)
    if engine == "langgraph":
        app = graph.builder.compile(checkpointer=InMemorySaver())
    else:
        app = graph.with_checkpoint_saver(InMemorySaver())
    config = {"configurable": {"thread_id": "article"}}
    article = {"title": "Ten tips for teh stand-up", "author": "Maya",
               "body": "Everyone should recieve teh agenda."}
    seen = [app.invoke(article, config)]
    seen.append(app.invoke(
        Command(resume={"action": "respond", "text": "fix it", "reviewer": "rita"}), config
    ))
    seen.append(app.invoke(Command(resume={"action": "approve", "reviewer": "rita"}), config))
    return [canonical(v) for v in seen]


def test_the_demo_publishing_workflow_is_langgraph_code() -> None:
    """The review app's LangGraph-style demo graph (demo/workflows/publishing.py) asks the same
    reviews and ends the same on LangGraph as on Stepwise; the app runs it like any other
    graph (tests/runtime)."""
    on_langgraph = _publishing_run("langgraph")
    assert _publishing_run("stepwise") == on_langgraph
    assert [len(v.get("__interrupt__", ())) for v in on_langgraph] == [1, 1, 0]
    assert on_langgraph[-1]["published_url"] == "https://blog.example.com/ten-tips-for-teh-stand-up"
