"""Map-reduce into a subgraph (how-to "Use subgraphs" with `Send`): three `Send` tasks of one
subgraph node run side by side, each pausing at an interrupt inside the child; the sleeps
make the siblings finish their steps in an order unlike their start. Each task must see its
own question and get its own answer back (each has a namespace of its own)."""

import operator
import time
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Command, Send, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    items: list[str]
    out: Annotated[list[str], operator.add]


class Job(TypedDict):
    item: str
    out: Annotated[list[str], operator.add]


def prepare(state: Job):
    time.sleep({"x": 0.05, "y": 0.0, "z": 0.02}[state["item"]])
    return {"out": []}


def check(state: Job):
    time.sleep({"x": 0.0, "y": 0.05, "z": 0.02}[state["item"]])
    answer = interrupt(f"ok {state['item']}?")
    return {"out": [f"{state['item']}:{answer}"]}


def fan_out(state: State):
    return [Send("worker", {"item": item, "out": []}) for item in state["items"]]


def main(checkpointer):
    child = StateGraph(Job)
    child.add_node(prepare)
    child.add_node("check", check)
    child.add_edge(START, "prepare")
    child.add_edge("prepare", "check")
    builder = StateGraph(State)
    builder.add_node("worker", child.compile())
    builder.add_conditional_edges(START, fan_out)
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "send-sub"}}
    graph.invoke({"items": ["x", "y", "z"], "out": []}, config)
    waiting = graph.get_state(config, subgraphs=True)
    seen = [("questions", sorted(i.value for i in waiting.interrupts))]
    seen.append(("child states", sorted(t.state.values["item"] for t in waiting.tasks)))
    answers = {i.id: f"yes to {i.value}" for i in waiting.interrupts}
    result = graph.invoke(Command(resume=answers), config)
    seen.append(("answers", sorted(result["out"])))
    return seen
