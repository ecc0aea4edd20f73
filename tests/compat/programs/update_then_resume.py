"""Edit the state of a paused thread, then answer (how-to "Review and edit state"):
`update_state` moves the thread to a new checkpoint where the interrupted node is still next;
`Command(resume=...)` answers the question that node asks again there."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list[str], operator.add]
    name: str


def first(state: State):
    return {"log": ["first"]}


def ask(state: State):
    name = interrupt("name?")
    return {"name": name, "log": ["ask"]}


def last(state: State):
    return {"log": [f"last:{state['name']}"]}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node(first)
    builder.add_node(ask)
    builder.add_node(last)
    builder.add_edge(START, "first")
    builder.add_edge("first", "ask")
    builder.add_edge("ask", "last")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "edit"}}
    graph.invoke({"log": [], "name": ""}, config)
    graph.update_state(config, {"log": ["edited"]})
    edited = graph.get_state(config)
    seen = [("edited", (edited.next, edited.values))]
    seen.append(("resumed", graph.invoke(Command(resume="zed"), config)))
    return seen
