"""`get_stream_writer()`: chunks reach `stream_mode="custom"` while the node still runs;
several modes at once; `subgraphs=True` names where a chunk came from."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, TypedDict

import pytest

from orchestration import END, Command, StateGraph, get_stream_writer, interrupt
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig


class State(TypedDict, total=False):
    text: str


def test_a_chunk_arrives_while_the_node_is_still_running() -> None:
    seen = threading.Event()

    def talk(s: State) -> dict[str, Any]:
        write = get_stream_writer()
        write("first token")
        # Only a consumer that received the chunk before the node returned can set this.
        assert seen.wait(timeout=10), "the chunk was not streamed while the node ran"
        write("second token")
        return {"text": "done"}

    graph = (
        StateGraph(State)
        .add_node("talk", talk)
        .set_entry_point("talk")
        .set_finish_point("talk")
        .compile()
    )
    chunks = []
    for chunk in graph.stream({}, stream_mode="custom"):
        chunks.append(chunk)
        seen.set()
    assert chunks == ["first token", "second token"]


def test_async_node_chunks_arrive_while_it_runs() -> None:
    async def talk(s: State) -> dict[str, Any]:
        write = get_stream_writer()
        for token in ("a", "b"):
            write(token)
            await asyncio.sleep(0.01)
        await gate.wait()
        return {"text": "done"}

    gate: asyncio.Event
    graph = (
        StateGraph(State)
        .add_node("talk", talk)
        .set_entry_point("talk")
        .set_finish_point("talk")
        .compile()
    )

    async def consume() -> list[Any]:
        nonlocal gate
        gate = asyncio.Event()
        got = []
        async for chunk in graph.astream({}, stream_mode="custom"):
            got.append(chunk)
            if len(got) == 2:
                gate.set()  # the node waits for this: the chunks must come first
        return got

    assert asyncio.run(asyncio.wait_for(consume(), 10)) == ["a", "b"]


def test_a_list_of_modes_yields_mode_chunk_pairs_in_order(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    def one(s: State) -> dict[str, Any]:
        get_stream_writer()({"progress": 50})
        return {"text": "one"}

    def two(s: State) -> dict[str, Any]:
        get_stream_writer()("two says hi")
        return {"text": s["text"] + "+two"}

    graph = (
        StateGraph(State)
        .add_node("one", one)
        .add_node("two", two)
        .set_entry_point("one")
        .add_edge("one", "two")
        .add_edge("two", END)
        .compile(checkpointer=saver)
    )
    items = list(graph.stream({"text": ""}, config, stream_mode=["updates", "custom", "values"]))
    assert items == [
        ("values", {"text": ""}),
        ("custom", {"progress": 50}),
        ("updates", {"one": {"text": "one"}}),
        ("values", {"text": "one"}),
        ("custom", "two says hi"),
        ("updates", {"two": {"text": "one+two"}}),
        ("values", {"text": "one+two"}),
    ]


def test_the_writer_does_nothing_outside_a_stream() -> None:
    def talk(s: State) -> dict[str, Any]:
        get_stream_writer()("nobody listens")
        return {"text": "ok"}

    graph = (
        StateGraph(State)
        .add_node("talk", talk)
        .set_entry_point("talk")
        .set_finish_point("talk")
        .compile()
    )
    assert graph.invoke({}) == {"text": "ok"}
    assert list(graph.stream({}, stream_mode="updates")) == [{"talk": {"text": "ok"}}]
    get_stream_writer()("outside any node")  # no error


def test_subgraph_chunks_and_namespaces(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    def speak(s: State) -> dict[str, Any]:
        get_stream_writer()("from the child")
        return {"text": "child"}

    child = (
        StateGraph(State)
        .add_node("speak", speak)
        .set_entry_point("speak")
        .set_finish_point("speak")
        .compile()
    )
    graph = (
        StateGraph(State)
        .add_node("outer", child)
        .set_entry_point("outer")
        .add_edge("outer", END)
        .compile(checkpointer=saver)
    )
    # as in LangGraph: without subgraphs=True a subgraph's chunks are not streamed
    plain = list(graph.stream({}, config, stream_mode=["custom", "updates"]))
    assert plain == [("updates", {"outer": {"text": "child"}})]
    other = CheckpointConfig(config.thread_id + "-b")
    nested = list(graph.stream({}, other, stream_mode=["custom", "updates"], subgraphs=True))
    assert nested == [
        (("outer",), "custom", "from the child"),
        (("outer",), "updates", {"speak": {"text": "child"}}),
        ((), "updates", {"outer": {"text": "child"}}),
    ]
    third = CheckpointConfig(config.thread_id + "-c")
    assert list(graph.stream({}, third, stream_mode="custom", subgraphs=True)) == [
        (("outer",), "from the child")
    ]


def test_streaming_through_an_interrupt_and_resume(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    def ask(s: State) -> dict[str, Any]:
        get_stream_writer()("thinking")
        return {"text": interrupt("ok?")}

    graph = (
        StateGraph(State)
        .add_node("ask", ask)
        .set_entry_point("ask")
        .set_finish_point("ask")
        .compile(checkpointer=saver)
    )
    first = list(graph.stream({}, config, stream_mode=["custom", "updates"]))
    assert first[0] == ("custom", "thinking")
    assert first[-1][0] == "updates" and "__interrupt__" in first[-1][1]
    again = list(graph.stream(Command(resume="yes"), config, stream_mode=["custom", "updates"]))
    assert again == [("custom", "thinking"), ("updates", {"ask": {"text": "yes"}})]


def test_unknown_stream_mode_is_refused_clearly() -> None:
    graph = (
        StateGraph(State)
        .add_node("n", lambda s: None)
        .set_entry_point("n")
        .set_finish_point("n")
        .compile()
    )
    with pytest.raises(ValueError, match="stream_mode must be one of"):
        list(graph.stream({}, stream_mode=["updates", "nonsense"]))


def test_a_failing_node_while_streaming_raises_after_its_chunks() -> None:
    def fail(s: State) -> dict[str, Any]:
        get_stream_writer()("before the failure")
        raise RuntimeError("broken")

    graph = (
        StateGraph(State)
        .add_node("fail", fail)
        .set_entry_point("fail")
        .set_finish_point("fail")
        .compile()
    )
    got = []
    with pytest.raises(Exception, match="broken"):
        for chunk in graph.stream({}, stream_mode="custom"):
            got.append(chunk)
    assert got == ["before the failure"]


def test_a_consumer_that_stops_iterating_stops_the_run() -> None:
    ran: list[str] = []

    def first(s: State) -> dict[str, Any]:
        ran.append("first")
        get_stream_writer()("hello")
        return {"text": "1"}

    def second(s: State) -> dict[str, Any]:
        ran.append("second")
        threading.Event().wait(0.5)  # still running when the consumer leaves
        return {"text": "2"}

    def third(s: State) -> dict[str, Any]:
        ran.append("third")
        return {"text": "3"}

    graph = (
        StateGraph(State)
        .add_node("first", first)
        .add_node("second", second)
        .add_node("third", third)
        .set_entry_point("first")
        .add_edge("first", "second")
        .add_edge("second", "third")
        .set_finish_point("third")
        .compile()
    )
    stream = graph.stream({}, stream_mode="custom")
    assert next(stream) == "hello"
    stream.close()
    assert "third" not in ran
