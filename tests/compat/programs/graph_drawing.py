"""get_graph(): the nodes and edges of a compiled graph (conditional ones marked), and
draw_mermaid(), as notebooks and READMEs show a graph: routers with a path map, a Command
with a Literal return annotation, a Send fan-out, a fan-in, and a node with no outgoing edge
(drawn to END); and what a node shows under its name: its metadata, `defer=True`, a static
breakpoint, and a router read from its `-> Literal[...]` annotation (no path map)."""

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
    seen = [
        ("nodes", list(drawn.nodes)),
        ("edges", [(e.source, e.target, e.conditional) for e in drawn.edges]),
        ("mermaid", drawn.draw_mermaid()),
    ]

    annotated = StateGraph(State)
    annotated.add_node("plan", plan, metadata={"owner": "ops", "tags": ["a", "b"], "x": {"no": 1}})
    annotated.add_node("review", fan)
    annotated.add_node("wrap", join, defer=True)
    annotated.add_edge(START, "plan")
    annotated.add_conditional_edges("plan", literal_route)
    annotated.add_edge("review", "wrap")
    annotated.add_edge("wrap", END)
    compiled = annotated.compile(
        checkpointer=checkpointer, interrupt_before=["review"], interrupt_after=["review", "wrap"]
    )
    drawn = compiled.get_graph()
    seen.append(("annotated edges", [(e.source, e.target, e.conditional) for e in drawn.edges]))
    seen.append(("annotated metadata", {name: node.metadata for name, node in drawn.nodes.items()}))
    seen.append(("annotated mermaid", drawn.draw_mermaid()))
    return seen


def literal_route(state: State) -> Literal["review", "__end__"]:
    return "review"
