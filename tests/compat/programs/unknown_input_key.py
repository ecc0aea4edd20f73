"""An input key that is not a state field (a declared difference)."""

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    topic: str


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node("echo", lambda state: {"topic": state["topic"]})
    builder.add_edge(START, "echo")
    graph = builder.compile()
    try:
        return [("invoke", graph.invoke({"topic": "cats", "topci": "typo"}))]
    except Exception as error:
        return [("invoke", error)]
