"""`StateGraph(State, input_schema=Input)`: what a caller may give at the start. Fields of
the input schema run the same on both; a key outside it is a declared difference."""

from typing import NotRequired, TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict):
    title: str
    approved: NotRequired[bool]


class Draft(TypedDict):
    title: str


def decide(state):
    return {"approved": state.get("approved", False) or state["title"] == "ok"}


def main(checkpointer):
    builder = StateGraph(State, input_schema=Draft)
    builder.add_node("decide", decide)
    builder.add_edge(START, "decide")
    graph = builder.compile()
    out = [("allowed", graph.invoke({"title": "draft"}))]
    try:
        out.append(("internal key", graph.invoke({"title": "draft", "approved": True})))
    except Exception as error:
        out.append(("internal key", error))
    return out
