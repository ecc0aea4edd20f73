"""Debugging a graph compiled without a checkpointer (how-to "Stream outputs", debug mode):
task and task-result events only; nothing is checkpointed, so no checkpoint events."""

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    n: int


def add(state: State):
    return {"n": state["n"] + 1}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node(add)
    builder.add_edge(START, "add")
    graph = builder.compile()
    seen = [("debug", [c["type"] for c in graph.stream({"n": 1}, stream_mode="debug")])]
    seen.append(("checkpoints", list(graph.stream({"n": 1}, stream_mode="checkpoints"))))
    return seen
