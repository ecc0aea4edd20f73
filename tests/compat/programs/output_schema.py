"""Input and output schemas (how-to "Define input and output schemas"), and a config's
`metadata` kept with each checkpoint: `invoke` returns the output schema's fields, the state
keeps them all, a paused run returns them with `__interrupt__`, a subgraph with an output
schema gives its parent only those fields."""

import operator
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class In(TypedDict):
    question: str


class Out(TypedDict):
    answer: str


class State(TypedDict):
    question: str
    answer: str
    scratch: Annotated[list, operator.add]


def think(state: State):
    return {"scratch": ["thought"], "answer": state["question"].upper()}


def stop(state: State):
    return Command(update={"scratch": ["stop"]}, goto=END)


def confirm(state: State):
    return {"answer": state["answer"] + " " + interrupt("confirm?")}


def main(checkpointer):
    builder = StateGraph(State, input_schema=In, output_schema=Out)
    builder.add_node("think", think)
    builder.add_node("stop", stop)
    builder.add_edge(START, "think")
    builder.add_edge("think", "stop")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "o"}, "metadata": {"user": "ada", "run": 7}}
    seen = [("output", graph.invoke({"question": "hi"}, config))]
    state = graph.get_state(config)
    seen.append(("the state keeps every field", state.values))
    seen.append(("metadata of the latest", state.metadata.get("user")))
    history = [s for s in graph.get_state_history(config) if s.next != ("__start__",)]
    seen.append(("metadata in history", [s.metadata.get("run") for s in history]))
    found = graph.get_state_history(config, filter={"user": "ada"})
    seen.append(("found by metadata", len([s for s in found if s.next != ("__start__",)])))
    values = graph.stream(
        {"question": "yo"}, {"configurable": {"thread_id": "p"}}, stream_mode="values"
    )
    seen.append(("values stream", list(values)))

    builder = StateGraph(State, output_schema=Out)
    builder.add_node("think", think)
    builder.add_node("confirm", confirm)
    builder.add_edge(START, "think")
    builder.add_edge("think", "confirm")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "q"}}
    seen.append(("paused", graph.invoke({"question": "ok", "answer": "", "scratch": []}, config)))
    seen.append(("resumed", graph.invoke(Command(resume="yes"), config)))

    child = StateGraph(State, output_schema=Out)
    child.add_node("think", think)
    child.add_edge(START, "think")
    parent = StateGraph(State)
    parent.add_node("child", child.compile())
    parent.add_edge(START, "child")
    parent = parent.compile()
    seen.append(("subgraph", parent.invoke({"question": "sub", "answer": "", "scratch": ["x"]})))
    return seen
