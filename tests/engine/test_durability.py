"""`durability=` per call: "exit" stores only what the call ends with (sync and async runs,
streams), a node with side effects still gets its superstep stored first, and a bad value is
refused before anything runs."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

import pytest
from typing_extensions import TypedDict

from orchestration import START, Command, StateGraph, interrupt
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph(
    saver: BaseCheckpointSaver, *, ask: bool = False, acts: list[int] | None = None,
    thread: str = "t",
) -> Any:
    builder = StateGraph(State)
    builder.add_node("a", lambda state: {"log": ["a"]})
    builder.add_node("b", lambda state: {"log": ["b:" + interrupt("?")]} if ask else {"log": ["b"]})
    if acts is None:
        builder.add_node("c", lambda state: {"log": ["c"]})
    else:
        def act(state: State) -> dict[str, Any]:
            acts.append(len(saver.list(CheckpointConfig(thread))))
            return {"log": ["c"]}

        builder.add_node("c", act, side_effects=True)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    return builder.compile(checkpointer=saver)


def _stored(saver: BaseCheckpointSaver, thread: str) -> list[tuple[str, ...]]:
    return [t.checkpoint.next for t in saver.list(CheckpointConfig(thread))]


def test_exit_stores_only_the_last_checkpoint_of_the_call(saver: BaseCheckpointSaver) -> None:
    graph = _graph(saver)
    graph.invoke({"log": []}, CheckpointConfig("x"), durability="exit")
    assert _stored(saver, "x") == [()]
    graph.invoke({"log": []}, CheckpointConfig("s"), durability="sync")
    assert _stored(saver, "s") == [("a",), ("b",), ("c",), ()]


def test_exit_under_ainvoke_and_astream_pauses_and_resumes(saver: BaseCheckpointSaver) -> None:
    graph = _graph(saver, ask=True)
    config = CheckpointConfig("x")

    async def run() -> tuple[Any, list[Any]]:
        paused = await graph.ainvoke({"log": []}, config, durability="exit")
        assert _stored(saver, "x") == [("b",)]
        chunks = [c async for c in graph.astream(Command(resume="y"), config, durability="exit")]
        return paused, chunks

    paused, chunks = asyncio.run(run())
    assert paused["log"] == ["a"]
    assert chunks == [{"b": {"log": ["b:y"]}}, {"c": {"log": ["c"]}}]
    assert _stored(saver, "x") == [("b",), ()]
    tip = saver.list(CheckpointConfig("x"))[-1]
    assert tip.parent_config is not None
    assert tip.parent_config.checkpoint_id == saver.list(CheckpointConfig("x"))[0].checkpoint.id


def test_a_node_with_side_effects_acts_only_once_its_step_is_stored(
    saver: BaseCheckpointSaver,
) -> None:
    acts: list[int] = []
    graph = _graph(saver, acts=acts)
    graph.invoke({"log": []}, CheckpointConfig("t"), durability="exit")
    assert acts == [1]  # the checkpoint before `c` was stored when `c` ran
    assert _stored(saver, "t") == [("c",), ()]


def test_a_failed_call_under_exit_keeps_where_it_failed(saver: BaseCheckpointSaver) -> None:
    def boom(state: State) -> dict[str, Any]:
        raise ValueError("down")

    builder = StateGraph(State)
    builder.add_node("a", lambda state: {"log": ["a"]})
    builder.add_node("b", boom)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(ValueError, match="down"):
        graph.invoke({"log": []}, CheckpointConfig("f"), durability="exit")
    assert _stored(saver, "f") == [("b",)]


def test_an_unknown_durability_is_refused_before_anything_runs(
    saver: BaseCheckpointSaver,
) -> None:
    graph = _graph(saver)
    with pytest.raises(ValueError, match="'sync', 'async', 'exit'"):
        graph.invoke({"log": []}, CheckpointConfig("bad"), durability="later")
    assert saver.get_tuple(CheckpointConfig("bad")) is None
