"""`invoke`/`ainvoke`'s LangGraph options: `output_keys` and `stream_mode`; and what
`get_state` shows for a thread that never ran."""

from __future__ import annotations

import asyncio
import operator
from dataclasses import dataclass, field
from typing import Annotated, TypedDict

import pytest

from orchestration import START, Command, StateGraph, interrupt
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig


class Doc(TypedDict):
    title: str
    words: int


def count(state: Doc) -> dict[str, object]:
    return {"words": len(state["title"].split())}


def ask(state: Doc) -> dict[str, object]:
    return {"title": interrupt("new title?")}


def graph(saver: BaseCheckpointSaver | None = None, *, asks: bool = False):
    builder = StateGraph(Doc).add_node(count).add_edge(START, "count")
    if asks:
        builder.add_node(ask).add_edge("count", "ask")
    return builder.compile(checkpointer=saver)


def test_output_keys_pick_fields_or_one_value() -> None:
    assert graph().invoke({"title": "a b c"}, output_keys=["words"]) == {"words": 3}
    assert graph().invoke({"title": "a b c"}, output_keys="words") == 3


def test_an_unknown_output_key_is_refused_before_anything_runs(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    with pytest.raises(ValueError, match=r"\['nope'\].*\['title', 'words'\]"):
        graph(saver).invoke({"title": "a"}, config, output_keys=["words", "nope"])
    assert saver.get_tuple(config) is None


def test_output_keys_narrow_stream_chunks_sync_and_async(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    """`invoke(stream_mode=..., output_keys=...)` is the narrowed stream: a task that wrote
    none of the keys is `{node: None}`, a step that changed none of them streams no values."""
    chunks = graph().invoke({"title": "a b"}, stream_mode="updates", output_keys=["title"])
    assert chunks == [{"count": None}]
    values = list(graph().stream({"title": "a b"}, stream_mode="values", output_keys="title"))
    assert values == ["a b"]  # the input's; `count` wrote only `words`

    async def narrowed() -> list[object]:
        return [c async for c in graph(saver, asks=True).astream(
            {"title": "a b"}, config, stream_mode=["values", "updates"], output_keys="words")]

    got = asyncio.run(narrowed())
    assert got[:3] == [("updates", {"count": 2}), ("values", 2), ("updates", got[2][1])]
    assert [i.value for i in got[2][1]["__interrupt__"]] == ["new title?"]
    assert list(got[3][1]) == ["__interrupt__"]  # one key: only why the run paused
    with pytest.raises(ValueError, match="nope"):
        list(graph().stream({"title": "a"}, output_keys="nope"))


def test_a_subgraphs_chunks_are_not_narrowed_by_the_parents_keys() -> None:
    parent = StateGraph(Doc).add_node("child", graph()).add_edge(START, "child").compile()
    chunks = list(parent.stream(
        {"title": "x y z"}, stream_mode="updates", output_keys="title", subgraphs=True))
    assert chunks[0][1] == {"count": {"words": 3}}  # the child's own update, whole
    assert chunks[-1] == ((), {"child": "x y z"})


def test_a_paused_run_keeps_its_interrupts_beside_the_picked_keys(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    paused = graph(saver, asks=True).invoke({"title": "a b"}, config, output_keys=["words"])
    assert paused["words"] == 2
    assert [i.value for i in paused["__interrupt__"]] == ["new title?"]


def test_stream_mode_returns_the_chunks_sync_and_async(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    g = graph(saver, asks=True)
    chunks = g.invoke({"title": "a b"}, config, stream_mode="updates")
    assert chunks[0] == {"count": {"words": 2}}
    assert [i.value for i in chunks[-1]["__interrupt__"]] == ["new title?"]
    resumed = asyncio.run(g.ainvoke(Command(resume="c"), config, stream_mode="values"))
    assert resumed == {"title": "c", "words": 2}
    words = asyncio.run(g.ainvoke({"title": "x y z"}, CheckpointConfig(config.thread_id + "b"),
                                  output_keys="words"))
    assert words == 3


class Log(TypedDict):
    lines: Annotated[list[str], operator.add]


def test_get_state_of_a_thread_that_never_ran(saver: BaseCheckpointSaver) -> None:
    # empty, not the reducer's [] (LangGraph code asks `if not state.values` for a new thread)
    log = StateGraph(Log).add_node("n", lambda s: {}).add_edge(START, "n")
    empty = log.compile(checkpointer=saver).get_state(CheckpointConfig("never-ran"))
    assert empty.values == {} and empty.next == () and empty.metadata is None

    @dataclass
    class Tally:
        seen: list[str] = field(default_factory=list)

    tally = StateGraph(Tally).add_node("n", lambda s: {}).add_edge(START, "n")
    # an instance of the schema, as the contract says (a dataclass has its defaults)
    assert tally.compile(checkpointer=saver).get_state(CheckpointConfig("x")).values == Tally()
