"""Branching and map-reduce (how-to "Use the graph API": Send, parallel branches, defer)."""

import operator
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict


class OverallState(TypedDict):
    topic: str
    subjects: list
    jokes: Annotated[list, operator.add]
    best_selected_joke: str


def generate_topics(state: OverallState):
    return {"subjects": [f"{state['topic']} {n}" for n in ("lions", "elephants", "penguins")]}


def generate_joke(state: dict):
    return {"jokes": [f"a joke about {state['subject']}"]}


def continue_to_jokes(state: OverallState):
    return [Send("generate_joke", {"subject": s}) for s in state["subjects"]]


def best_joke(state: OverallState):
    return {"best_selected_joke": max(state["jokes"], key=len)}


class Agg(TypedDict):
    aggregate: Annotated[list, operator.add]


def node(name):
    def run(state: Agg):
        return {"aggregate": [name]}

    run.__name__ = name
    return run


def main(checkpointer):
    graph = StateGraph(OverallState)
    graph.add_node("generate_topics", generate_topics)
    graph.add_node("generate_joke", generate_joke)
    graph.add_node("best_joke", best_joke)
    graph.add_edge(START, "generate_topics")
    graph.add_conditional_edges("generate_topics", continue_to_jokes, ["generate_joke"])
    graph.add_edge("generate_joke", "best_joke")
    graph.add_edge("best_joke", END)
    app = graph.compile(checkpointer=checkpointer)

    seen = []
    config = {"configurable": {"thread_id": "animals"}}
    chunks = list(app.stream({"topic": "animals"}, config))
    # The three Send tasks run in parallel: their order is the scheduler's, so sorted.
    seen.append(("stream updates", sorted(chunks, key=repr)))
    seen.append(("one chunk per task", sum("generate_joke" in c for c in chunks)))
    seen.append(("final", app.get_state(config).values))

    # Branches of unequal length joined by a deferred node: it runs once, at the end.
    builder = StateGraph(Agg)
    for name in ("a", "b", "b_2", "c"):
        builder.add_node(node(name))
    builder.add_node(node("d"), defer=True)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("a", "c")
    builder.add_edge("b", "b_2")
    builder.add_edge("b_2", "d")
    builder.add_edge("c", "d")
    builder.add_edge("d", END)
    seen.append(("deferred", builder.compile().invoke({"aggregate": []})))

    # Fan-out without defer: d runs after each branch.
    builder = StateGraph(Agg)
    for name in ("a", "b", "c", "d"):
        builder.add_node(node(name))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("a", "c")
    builder.add_edge(["b", "c"], "d")
    seen.append(("join", builder.compile().invoke({"aggregate": []})))
    return seen
