"""`bulk_update_state(config, supersteps)` with `StateUpdate`s: several supersteps of edits in
one call, each written as one checkpoint; two updates in one superstep apply together, as if
both nodes ran side by side (and the graph goes on from both)."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import StateUpdate
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list, operator.add]


def build(checkpointer):
    builder = StateGraph(State)
    builder.add_node("a", lambda state: {"log": ["a"]})
    builder.add_node("b", lambda state: {"log": ["b"]})
    builder.add_node("c", lambda state: {"log": ["c"]})
    builder.add_edge(START, "a")
    builder.add_edge("b", "c")
    return builder.compile(checkpointer=checkpointer)


def main(checkpointer):
    graph = build(checkpointer)
    config = {"configurable": {"thread_id": "bulk"}}
    graph.invoke({"log": []}, config)
    seen = []
    last = graph.bulk_update_state(config, [
        [StateUpdate({"log": ["x"]}, "a")],
        [StateUpdate({"log": ["y"]}, "a"), StateUpdate({"log": ["z"]}, "b")],
    ])
    seen.append(("returns a config", "checkpoint_id" in last["configurable"]))
    seen.append(("state", graph.get_state(config)))
    seen.append(("history", list(graph.get_state_history(config))))
    seen.append(("continued", graph.invoke(None, config)))
    for bad in ([], [[]]):
        try:
            graph.bulk_update_state(config, bad)
        except ValueError as error:
            seen.append((f"refused {bad}", type(error).__name__))
    return seen
