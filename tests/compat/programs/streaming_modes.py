"""Streaming (how-to "Stream outputs"): values, updates, tasks, checkpoints, debug, and lists
of modes, including a run that pauses."""

import operator
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    topic: str
    joke: str
    notes: Annotated[list, operator.add]


def refine_topic(state: State):
    return {"topic": state["topic"] + " and cats", "notes": ["refined"]}


def generate_joke(state: State):
    return {"joke": f"This is a joke about {state['topic']}"}


def check(state: State):
    verdict = interrupt({"joke": state["joke"]})
    return {"notes": [f"checked: {verdict}"]}


def quiet(state: State):
    return None


def build(checkpointer):
    graph = StateGraph(State)
    graph.add_node(refine_topic)
    graph.add_node(generate_joke)
    graph.add_node(check)
    graph.add_node(quiet)
    graph.add_edge(START, "refine_topic")
    graph.add_edge("refine_topic", "generate_joke")
    graph.add_edge("generate_joke", "check")
    graph.add_edge("check", "quiet")
    graph.add_edge("quiet", END)
    return graph.compile(checkpointer=checkpointer)


def main(checkpointer):
    graph = build(checkpointer)
    seen = []
    start = {"topic": "ice cream", "joke": "", "notes": []}
    for mode in ["values", "updates", "tasks", "checkpoints", "debug"]:
        config = {"configurable": {"thread_id": f"stream-{mode}"}}
        seen.append((f"stream {mode}", list(graph.stream(start, config, stream_mode=mode))))
        seen.append((f"stream {mode} resumed", list(graph.stream(
            Command(resume="funny"), config, stream_mode=mode
        ))))
    config = {"configurable": {"thread_id": "stream-both"}}
    seen.append(("stream two modes", list(graph.stream(
        start, config, stream_mode=["updates", "values"]
    ))))
    seen.append(("stream two modes resumed", list(graph.stream(
        Command(resume="ok"), config, stream_mode=["updates", "values"]
    ))))
    return seen
