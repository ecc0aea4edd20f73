"""Fan-out (how-to "Create branches for parallel execution"): branches added in an order that
is not alphabetical append to one list, alone and beside `Send` tasks in the same superstep;
the list's order is the order the superstep's writes are applied in."""

import operator
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list[str], operator.add]


def step(name: str):
    def node(state: State):
        return {"log": [name]}
    return node


def fan(state: State):
    return [Send("worker", {"log": [f"job {n}"]}) for n in (3, 1, 2)] + ["zeta", "alpha"]


def worker(state: State):
    return {"log": [f"worked {state['log'][-1]}"]}


def main(checkpointer):
    seen = []
    plain = StateGraph(State)
    plain.add_node("start", step("start"))
    for name in ("spelling", "legal", "seo", "b", "a"):
        plain.add_node(name, step(name))
        plain.add_edge("start", name)
    plain.add_edge(START, "start")
    seen.append(("branches", plain.compile().invoke({"log": []})["log"]))

    mixed = StateGraph(State)
    mixed.add_node("start", step("start"))
    for name in ("zeta", "alpha"):
        mixed.add_node(name, step(name))
        mixed.add_edge(name, END)
    mixed.add_node("worker", worker)
    mixed.add_edge(START, "start")
    mixed.add_conditional_edges("start", fan, ["worker", "zeta", "alpha"])
    graph = mixed.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "fan"}}
    seen.append(("branches and sends", graph.invoke({"log": []}, config)["log"]))
    return seen
