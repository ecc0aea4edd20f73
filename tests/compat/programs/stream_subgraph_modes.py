"""`stream(subgraphs=True)` in the `tasks`, `checkpoints` and `debug` modes: the subgraph's
own events come under its namespace, as its `updates` and `values` do. Namespaces are
compared by their node names (the task ids in them are each engine's)."""

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    x: int


def build(checkpointer):
    child = StateGraph(State)
    child.add_node("inner", lambda state: {"x": state["x"] + 1})
    child.add_edge(START, "inner")
    builder = StateGraph(State)
    builder.add_node("child", child.compile())
    builder.add_node("last", lambda state: {"x": state["x"] * 10})
    builder.add_edge(START, "child")
    builder.add_edge("child", "last")
    return builder.compile(checkpointer=checkpointer)


def names(ns):
    return "/".join(part.split(":")[0] for part in ns)


def main(checkpointer):
    graph = build(checkpointer)
    seen = []
    for mode in ["tasks", "checkpoints", "debug"]:
        config = {"configurable": {"thread_id": mode}}
        chunks = graph.stream({"x": 0}, config, stream_mode=mode, subgraphs=True)
        seen.append((mode, [(names(ns), chunk) for ns, chunk in chunks]))
    return seen
