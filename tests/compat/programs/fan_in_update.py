"""Editing state at a fan-in (how-to "Use time-travel" on a graph with a waiting edge): three
checks run side by side and a review waits for all of them; a person then edits the state at
the checkpoint the checks wrote, as each of them, and the branch still goes to the review."""

import operator
from typing import Annotated

from langgraph.errors import InvalidUpdateError
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    body: str
    findings: Annotated[list[str], operator.add]
    verdict: str


def prepare(state: State):
    return {"findings": []}


def spelling(state: State):
    return {"findings": ["spelling: teh"] if "teh" in state["body"] else []}


def legal(state: State):
    return {"findings": []}


def seo(state: State):
    return {"findings": ["seo: short"]}


def review(state: State):
    return {"verdict": "fix" if state["findings"] else "ok"}


def main(checkpointer):
    builder = StateGraph(State)
    for name, fn in [("prepare", prepare), ("spelling", spelling), ("legal", legal),
                     ("seo", seo), ("review", review)]:
        builder.add_node(name, fn)
    builder.add_edge(START, "prepare")
    for check in ("spelling", "legal", "seo"):
        builder.add_edge("prepare", check)
    builder.add_edge(["spelling", "legal", "seo"], "review")
    builder.add_edge("review", END)
    graph = builder.compile(checkpointer=checkpointer, interrupt_before=["review"])

    seen = []
    config = {"configurable": {"thread_id": "article"}}
    graph.invoke({"body": "teh text", "findings": [], "verdict": ""}, config)
    checked = graph.get_state(config)
    seen.append(("paused before", checked.next))
    try:
        graph.update_state(checked.config, {"body": "the text"})
    except InvalidUpdateError as exc:
        seen.append(("no as_node", type(exc).__name__))
    for node in ("spelling", "legal", "seo", "prepare", "review"):
        edited = graph.update_state(checked.config, {"body": "the text"}, as_node=node)
        seen.append((f"next as {node}", graph.get_state(edited).next))
    edited = graph.update_state(checked.config, {"body": "the text"}, as_node="seo")
    again = graph.update_state(edited, {"verdict": ""}, as_node="prepare")
    seen.append(("next after two edits", graph.get_state(again).next))
    seen.append(("fork runs the review", graph.invoke(None, edited)))
    return seen
