"""`durability=` (how-to "Durable execution"): "sync" and "async" store every superstep,
"exit" only what the call ends with; an interrupt, a failure and a subgraph under "exit"."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list, operator.add]


def ask(state: State):
    return {"log": ["b:" + interrupt("go on?")]}


failures = []


def flaky(state: State):
    if not failures:
        failures.append("once")
        raise ValueError("the service is down")
    return {"log": ["flaky ok"]}


def build(checkpointer, middle):
    builder = StateGraph(State)
    builder.add_node("a", lambda state: {"log": ["a"]})
    builder.add_node("b", middle)
    builder.add_node("c", lambda state: {"log": ["c"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    return builder.compile(checkpointer=checkpointer)


def steps(graph, config):
    return [
        (s.next, s.values)
        for s in graph.get_state_history(config)
        if s.next != ("__start__",)
    ]


def main(checkpointer):
    seen = []
    graph = build(checkpointer, ask)
    for mode in ("sync", "async", "exit"):
        config = {"configurable": {"thread_id": mode}}
        seen.append((f"{mode} paused", graph.invoke({"log": []}, config, durability=mode)))
        seen.append((f"{mode} stored while paused", steps(graph, config)))
        seen.append((f"{mode} state", graph.get_state(config)))
        seen.append((f"{mode} done", graph.invoke(Command(resume="yes"), config, durability=mode)))
        seen.append((f"{mode} stored", steps(graph, config)))
        streamed = graph.stream({"log": ["new"]}, config, stream_mode="updates", durability=mode)
        seen.append((f"{mode} streamed", list(streamed)))
        seen.append((f"{mode} stored after stream", len(steps(graph, config))))

    graph = build(checkpointer, flaky)
    config = {"configurable": {"thread_id": "failing"}}
    try:
        graph.invoke({"log": []}, config, durability="exit")
    except ValueError as error:
        seen.append(("failed", str(error)))
    seen.append(("stored after the failure", steps(graph, config)))
    seen.append(("resumed", graph.invoke(None, config, durability="exit")))
    seen.append(("stored after the resume", steps(graph, config)))

    child = build(None, lambda state: {"log": ["b"]})
    parent = StateGraph(State)
    parent.add_node("child", child)
    parent.add_edge(START, "child")
    parent = parent.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "parent"}}
    seen.append(("subgraph", parent.invoke({"log": []}, config, durability="exit")))
    seen.append(("subgraph stored", steps(parent, config)))
    return seen
