"""interrupt() in a graph compiled without a checkpointer (a declared difference)."""

from langgraph.graph import START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    ask: str


def review(state: State):
    return {"ask": interrupt(state["ask"])}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node(review)
    builder.add_edge(START, "review")
    graph = builder.compile()
    try:
        return [("invoke", graph.invoke({"ask": "approve?"}))]
    except Exception as error:
        return [("invoke", error)]
