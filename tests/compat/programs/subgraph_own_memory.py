"""A subgraph that keeps its own memory (how-to "Use subgraphs", `compile(checkpointer=True)`):
each run of its node continues the state the last run left, inside the parent's thread."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class Notes(TypedDict):
    seen: Annotated[list[str], operator.add]
    item: str


def remember(state: Notes):
    return {"seen": [state["item"]]}


def main(checkpointer):
    child = StateGraph(Notes)
    child.add_node(remember)
    child.add_edge(START, "remember")
    builder = StateGraph(Notes)
    builder.add_node("notes", child.compile(checkpointer=True))
    builder.add_edge(START, "notes")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "own-memory"}}
    seen = [(item, graph.invoke({"item": item, "seen": []}, config)["seen"])
            for item in ("a", "b", "c")]
    return seen
