"""Command as input, stream mode lists, breakpoints combined with edits, extra on forks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

from orchestration import END, Command, InvalidUpdateError, StateGraph
from orchestration.reducers import topic


@dataclass
class Log:
    log: Annotated[list[str], topic] = field(default_factory=list)
    value: int = 0


def abc(saver: Any = None, **kwargs: Any) -> Any:
    graph = StateGraph(Log)
    for name in ("a", "b", "c"):
        graph.add_node(name, lambda s, n=name: {"log": [n]})
    graph.set_entry_point("a").add_edge("a", "b").add_edge("b", "c").add_edge("c", END)
    return graph.compile(checkpointer=saver, **kwargs)


def test_command_input_with_update_and_goto_starts_at_the_named_node(saver, config) -> None:
    result = abc(saver).invoke(Command(update={"value": 2}, goto="b"), config)
    assert result == Log(log=["b", "c"], value=2)


def ask_graph(saver: Any, **kwargs: Any) -> Any:
    """`q` asks a question and logs the answer next to the current value."""
    from orchestration import interrupt

    graph = StateGraph(Log).add_node("q", lambda s: {"log": [f"{interrupt('?')}@{s.value}"]})
    return graph.set_entry_point("q").set_finish_point("q").compile(checkpointer=saver, **kwargs)


def test_resume_with_update_applies_the_update_before_the_node_reruns(saver, config) -> None:
    compiled = ask_graph(saver)
    compiled.invoke(None, config)
    result = compiled.invoke(Command(resume="yes", update={"value": 7}), config)
    assert result == Log(log=["yes@7"], value=7)


def test_resume_with_update_commits_it_in_the_resumed_superstep(saver, config) -> None:
    compiled = ask_graph(saver)
    compiled.invoke(None, config)
    compiled.invoke(Command(resume="yes", update={"value": 7}), config)
    sources = [t.metadata.source for t in saver.list(config)]
    latest = saver.get_tuple(config)
    assert sources == ["input", "loop"]
    assert latest.checkpoint.values["value"] == 7 and latest.checkpoint.next == ()


def test_resume_with_update_that_interrupts_again_keeps_the_update(saver, config) -> None:
    from orchestration import interrupt

    def twice(state: Log) -> dict:
        return {"log": [f"{interrupt('first')}+{interrupt('second')}@{state.value}"]}

    graph = StateGraph(Log).add_node("q", twice).set_entry_point("q").set_finish_point("q")
    compiled = graph.compile(checkpointer=saver)
    compiled.invoke(None, config)
    assert compiled.invoke(Command(resume="a", update={"value": 1}), config).value == 1
    assert compiled.invoke(Command(resume="b", update={"value": 2}), config).log == ["a+b@2"]


def test_resume_with_an_update_of_an_unknown_key_writes_nothing(saver, config) -> None:
    compiled = ask_graph(saver)
    compiled.invoke(None, config)
    with pytest.raises(InvalidUpdateError, match="'nope'"):
        compiled.invoke(Command(resume="x", update={"nope": 1}), config)
    assert compiled.get_state(config).interrupts[0].value == "?"
    assert compiled.invoke(Command(resume="later"), config).log == ["later@0"]


def _ask_then_audit(saver: Any) -> Any:
    from orchestration import interrupt

    graph = StateGraph(Log).add_node("q", lambda s: {"log": [f"{interrupt('?')}@{s.value}"]})
    graph.add_node("audit", lambda s: {"log": [f"audit@{s.value}"]})
    return graph.set_entry_point("q").compile(checkpointer=saver)


def test_resume_with_goto_runs_the_target_beside_the_resumed_task(saver, config) -> None:
    compiled = _ask_then_audit(saver)
    compiled.invoke(None, config)
    result = compiled.invoke(Command(resume="x", goto="audit", update={"value": 2}), config)
    assert result.log == ["audit@2", "x@2"]  # one superstep: writes in task-path order
    assert [s.metadata.step for s in compiled.get_state_history(config)] == [1, 0]


def test_resume_with_goto_delivered_again_runs_its_target_once(saver, config) -> None:
    from orchestration import interrupt

    def twice(state: Log) -> dict:
        return {"log": [f"{interrupt('first')}+{interrupt('second')}"]}

    graph = StateGraph(Log).add_node("q", twice).add_node("audit", lambda s: {"log": ["audit"]})
    compiled = graph.set_entry_point("q").compile(checkpointer=saver)
    compiled.invoke(None, config)
    first = compiled.get_state(config).interrupts[0].id
    command = Command(resume={first: "a"}, goto="audit")
    compiled.invoke(command, config)  # audit ran; q waits for its second answer
    compiled.invoke(command, config)  # a worker retrying the same delivery
    assert compiled.invoke(Command(resume="b"), config).log == ["audit", "a+b"]


def test_resume_with_goto_to_an_unknown_node_writes_nothing(saver, config) -> None:
    compiled = ask_graph(saver)
    compiled.invoke(None, config)
    with pytest.raises(InvalidUpdateError, match="'nope'"):
        compiled.invoke(Command(resume="x", goto="nope"), config)
    assert compiled.invoke(Command(resume="later"), config).log == ["later@0"]


async def test_async_resume_with_update_applies_the_update(saver, config) -> None:
    compiled = ask_graph(saver)
    await compiled.ainvoke(None, config)
    result = await compiled.ainvoke(Command(resume="ok", update={"value": 3}), config)
    assert result.log == ["ok@3"]


def test_stream_of_a_breakpoint_stop_ends_with_an_empty_interrupt_update(saver, config) -> None:
    chunks = list(abc(saver, interrupt_before=["b"]).stream(None, config))
    assert chunks == [{"a": {"log": ["a"]}}, {"__interrupt__": ()}]


def test_stream_of_an_interrupt_after_stop_ends_with_an_empty_interrupt_update(
    saver, config
) -> None:
    chunks = list(abc(saver, interrupt_after=["a"]).stream(None, config))
    assert chunks == [{"a": {"log": ["a"]}}, {"__interrupt__": ()}]


def test_stream_with_a_list_of_modes_yields_mode_chunk_pairs() -> None:
    chunks = list(abc().stream(None, stream_mode=["updates", "values"]))
    modes = [mode for mode, _ in chunks]
    assert modes == ["values", "updates", "values", "updates", "values", "updates", "values"]


def test_unknown_stream_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="stream_mode"):
        list(abc().stream(None, stream_mode="chatter"))  # type: ignore[arg-type]


def test_editing_state_at_a_breakpoint_then_continuing_runs_the_node(saver, config) -> None:
    compiled = abc(saver, interrupt_before=["b"])
    compiled.invoke(None, config)
    compiled.update_state(config, {"value": 4})
    assert compiled.invoke(None, config) == Log(log=["a", "b", "c"], value=4)


def test_update_state_on_an_empty_thread_creates_its_first_checkpoint(saver, config) -> None:
    compiled = abc(saver)
    cfg = compiled.update_state(config, {"value": 1}, as_node="a")
    snapshot = compiled.get_state(config)
    assert snapshot.config == cfg and snapshot.next == ("b",) and snapshot.parent_config is None
    assert compiled.invoke(None, config) == Log(log=["b", "c"], value=1)


def test_update_state_with_an_unknown_node_is_refused(saver, config) -> None:
    with pytest.raises(InvalidUpdateError, match="ghost"):
        abc(saver).update_state(config, {"value": 1}, as_node="ghost")


def test_fork_checkpoints_carry_the_calls_extra(saver, config) -> None:
    compiled = abc(saver)
    compiled.invoke(None, config)
    first = saver.list(config)[0]
    compiled.invoke(None, first.config, extra={"reason": "replay"})
    fork = next(t for t in saver.list(config) if t.metadata.source == "fork")
    assert fork.metadata.extra == {"reason": "replay"}


def test_get_state_of_an_unknown_thread_has_default_values_and_nothing_next(saver, config) -> None:
    snapshot = abc(saver).get_state(config)
    assert snapshot.values == Log() and snapshot.next == () and snapshot.metadata is None


async def test_async_recursion_limit_and_resume(saver, config) -> None:
    from orchestration import GraphRecursionError

    compiled = abc(saver)
    with pytest.raises(GraphRecursionError):
        await compiled.ainvoke(None, config, recursion_limit=1)
    assert (await compiled.ainvoke(None, config)).log == ["a", "b", "c"]
