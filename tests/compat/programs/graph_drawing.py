"""get_graph(): the nodes and edges of a compiled graph (conditional ones marked), and
draw_mermaid(), as notebooks and READMEs show a graph: routers with a path map, a Command
with a Literal return annotation, a Send fan-out, a fan-in, and a node with no outgoing edge
(drawn to END)."""

import operator
from typing import Annotated, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send
from typing_extensions import TypedDict


class State(TypedDict):
    n: int
    items: Annotated[list, operator.add]


def plan(state: State):
    return {}


def review(state: State) -> Command[Literal["fan", "__end__"]]:
    return Command(goto="fan")


def fan(state: State):
    return {}


def work(state: State):
    return {}


def join(state: State):
    return {}


def route(state: State):
    return "review" if state["n"] else "fan"


def spread(state: State):
    return [Send("work", {"n": 1, "items": []})]


def main(checkpointer):
    builder = StateGraph(State)
    for node in (plan, review, fan, work, join):
        builder.add_node(node)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", route, {"review": "review", "fan": "fan"})
    builder.add_conditional_edges("fan", spread, ["work"])
    builder.add_edge(["work", "review"], "join")
    builder.add_edge("join", END)
    drawn = builder.compile(checkpointer=checkpointer).get_graph()
    return [
        ("nodes", list(drawn.nodes)),
        ("edges", [(e.source, e.target, e.conditional) for e in drawn.edges]),
        ("mermaid", drawn.draw_mermaid()),
    ]
