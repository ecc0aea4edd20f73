"""New input given with a past checkpoint's config (`invoke(input, past.config)`): a new run
from START on that checkpoint's state. The tasks the checkpoint was waiting to run are
dropped, whether it waited at a plain edge or at an unanswered `interrupt()`."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list, operator.add]


def step(name):
    def node(state: State):
        return {"log": [name]}

    return node


def ask(state: State):
    return {"log": [f"ask:{interrupt('go on?')}"]}


def build(checkpointer, middle):
    builder = StateGraph(State)
    builder.add_node("a", step("a"))
    builder.add_node("b", middle)
    builder.add_node("c", step("c"))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    return builder.compile(checkpointer=checkpointer)


def main(checkpointer):
    seen = []
    graph = build(checkpointer, step("b"))
    config = {"configurable": {"thread_id": "plain"}}
    graph.invoke({"log": []}, config)
    past = next(s for s in graph.get_state_history(config) if s.next == ("b",))
    seen.append(("forked run", graph.invoke({"log": ["new"]}, past.config)))
    seen.append(("state after", graph.get_state(config)))

    asking = build(checkpointer, ask)
    config = {"configurable": {"thread_id": "asking"}}
    seen.append(("paused", asking.invoke({"log": []}, config)))
    paused = asking.get_state(config)
    seen.append(("new input at the pause", asking.invoke({"log": ["again"]}, paused.config)))
    seen.append(("waits again", asking.get_state(config).next))
    return seen
