"""`Command(graph=Command.PARENT)`: a subgraph's node hands off to its parent graph. The
subgraph stops at that superstep (unsaved); the parent's node that ran it takes the command's
update and goto as its own result, in sync and async runs, beside siblings and on resume."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

import pytest
from typing_extensions import TypedDict

from orchestration import (
    END,
    START,
    Command,
    InvalidUpdateError,
    ParentCommand,
    StateGraph,
    interrupt,
)
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def _child(target: str, *, asynchronous: bool = False) -> Any:
    def work(state: State) -> dict[str, Any]:
        return {"log": ["child works"]}

    def hand_off(state: State) -> Command[Any]:
        return Command(update={"log": [f"to {target}"]}, goto=target, graph=Command.PARENT)

    async def ahand_off(state: State) -> Command[Any]:
        await asyncio.sleep(0)
        return hand_off(state)

    def never(state: State) -> dict[str, Any]:
        raise AssertionError("the child ran on after its hand-off")

    builder = StateGraph(State)
    builder.add_node("work", work)
    builder.add_node("hand_off", ahand_off if asynchronous else hand_off)
    builder.add_node("never", never)
    builder.add_edge(START, "work")
    builder.add_edge("work", "hand_off")
    builder.add_edge("hand_off", "never")
    return builder.compile()


def _parent(child: Any, saver: BaseCheckpointSaver | None = None) -> Any:
    builder = StateGraph(State)
    builder.add_node("agent", child)
    builder.add_node("target", lambda state: {"log": ["target runs"]})
    builder.add_edge(START, "agent")
    builder.add_edge("target", END)
    return builder.compile(checkpointer=saver)


def test_the_parent_applies_the_command_as_the_subgraph_nodes_result(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    graph = _parent(_child("target"), saver)
    assert graph.invoke({"log": []}, config) == {"log": ["to target", "target runs"]}
    history = graph.get_state_history(config)
    assert [s.next for s in history] == [(), ("target",), ("agent",)]
    assert history[1].metadata.writes == {"agent": {"log": ["to target"]}}


def test_an_async_run_hands_off_too(saver: BaseCheckpointSaver, config: CheckpointConfig) -> None:
    graph = _parent(_child("target", asynchronous=True), saver)
    result = asyncio.run(graph.ainvoke({"log": []}, config))
    assert result == {"log": ["to target", "target runs"]}


def test_a_node_that_invokes_a_graph_itself_gets_the_hand_off() -> None:
    child = _child("target")
    after: list[str] = []

    def desk(state: State) -> dict[str, Any]:
        child.invoke({"log": []})
        after.append("ran on")  # never: the hand-off replaces this node's result
        return {"log": ["desk"]}

    builder = StateGraph(State)
    builder.add_node("desk", desk)
    builder.add_node("target", lambda state: {"log": ["target runs"]})
    builder.add_edge(START, "desk")
    assert builder.compile().invoke({"log": []}) == {"log": ["to target", "target runs"]}
    assert after == []


def test_siblings_in_the_parents_superstep_keep_their_writes(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    builder = StateGraph(State)
    builder.add_node("agent", _child("target"))
    builder.add_node("sibling", lambda state: {"log": ["sibling"]})
    builder.add_node("target", lambda state: {"log": ["target runs"]})
    builder.add_edge(START, "agent")
    builder.add_edge(START, "sibling")
    graph = builder.compile(checkpointer=saver)
    assert graph.invoke({"log": []}, config) == {"log": ["to target", "sibling", "target runs"]}


def test_a_hand_off_after_an_interrupt_in_the_child_resumes_into_the_parent(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    def ask(state: State) -> Command[Any]:
        answer = interrupt("where to?")
        return Command(update={"log": [f"asked: {answer}"]}, goto=answer, graph=Command.PARENT)

    child_builder = StateGraph(State)
    child_builder.add_node("ask", ask)
    child_builder.add_edge(START, "ask")
    graph = _parent(child_builder.compile(), saver)
    paused = graph.invoke({"log": []}, config)
    assert [i.value for i in paused["__interrupt__"]] == ["where to?"]
    assert graph.invoke(Command(resume="target"), config) == {
        "log": ["asked: target", "target runs"]
    }


def test_a_graph_without_a_parent_raises_parent_command_and_keeps_the_thread(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    graph = _child("target")
    graph = graph.with_checkpoint_saver(saver)
    with pytest.raises(ParentCommand, match="not running as a subgraph") as caught:
        graph.invoke({"log": []}, config)
    assert caught.value.command.goto == "target"
    assert caught.value.command.graph is None
    assert caught.value.node == "hand_off"
    # The hand-off's superstep was not saved: the thread waits before it.
    assert graph.get_state(config).next == ("hand_off",)


def test_a_hand_off_to_a_node_the_parent_lacks_is_refused_by_the_parent() -> None:
    graph = _parent(_child("nowhere"))
    with pytest.raises(InvalidUpdateError, match="nowhere"):
        graph.invoke({"log": []})
