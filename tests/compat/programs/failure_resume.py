"""Durable execution (concepts "Persistence": pending writes): a failed Send task, once fixed,
re-runs alone; the tasks that finished in its superstep are not run again."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict

calls = []
broken = {"on": True}


class State(TypedDict):
    items: list
    done: Annotated[list, operator.add]


def fan_out(state: State):
    return [Send("work", {"item": i}) for i in state["items"]]


def work(arg: dict):
    calls.append(arg["item"])
    if arg["item"] == "b" and broken["on"]:
        raise ConnectionError("service b is down")
    return {"done": [arg["item"]]}


def main(checkpointer):
    calls.clear()
    broken["on"] = True
    builder = StateGraph(State)
    builder.add_node("plan", lambda state: {})
    builder.add_node(work)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["work"])
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "durable"}}
    seen = []
    try:
        graph.invoke({"items": ["a", "b", "c"], "done": []}, config)
    except ConnectionError as error:
        seen.append(("raised", str(error)))
    seen.append(("calls before", sorted(calls)))
    broken["on"] = False
    result = graph.invoke(None, config)
    seen.append(("resumed", sorted(result["done"])))
    seen.append(("calls after", sorted(calls)))
    return seen
