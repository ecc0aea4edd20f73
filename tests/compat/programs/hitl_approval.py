"""Human in the loop (how-to "Add human intervention"): approve or edit, with interrupt()."""

import operator
from typing import Annotated, Literal

from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    draft: str
    decision: str
    log: Annotated[list, operator.add]


def write_draft(state: State):
    return {"draft": f"post about {state['draft']}", "log": ["drafted"]}


def human_review(state: State) -> Command[Literal["publish", "rewrite"]]:
    answer = interrupt({"question": "approve this draft?", "draft": state["draft"]})
    if answer["approved"]:
        return Command(goto="publish", update={"decision": "approved", "log": ["reviewed"]})
    return Command(goto="rewrite", update={"decision": answer["reason"], "log": ["reviewed"]})


def rewrite(state: State):
    return {"draft": state["draft"] + " (shorter)", "log": ["rewritten"]}


def publish(state: State):
    return {"log": ["published"]}


def build(checkpointer):
    builder = StateGraph(State)
    builder.add_node(write_draft)
    builder.add_node(human_review)
    builder.add_node(rewrite)
    builder.add_node(publish)
    builder.add_edge(START, "write_draft")
    builder.add_edge("write_draft", "human_review")
    builder.add_edge("rewrite", "human_review")
    return builder.compile(checkpointer=checkpointer)


def main(checkpointer):
    graph = build(checkpointer)
    seen = []
    config = {"configurable": {"thread_id": "review-1"}}
    seen.append(("paused", graph.invoke({"draft": "cats", "decision": "", "log": []}, config)))
    state = graph.get_state(config)
    seen.append(("waiting at", (state.next, state.interrupts)))
    seen.append(("rejected", graph.invoke(
        Command(resume={"approved": False, "reason": "too long"}), config
    )))
    seen.append(("stream approve", list(graph.stream(
        Command(resume={"approved": True}), config, stream_mode="updates"
    ))))
    seen.append(("final", graph.get_state(config)))

    # Static breakpoints given per call, then an edit of the state before continuing.
    config = {"configurable": {"thread_id": "review-2"}}
    seen.append(("breakpoint", graph.invoke(
        {"draft": "dogs", "decision": "", "log": []}, config, interrupt_before=["human_review"]
    )))
    seen.append(("stopped before", graph.get_state(config).next))
    graph.update_state(config, {"draft": "post about dogs, edited"})
    seen.append(("edited", graph.get_state(config).values))
    seen.append(("stream after edit", list(graph.stream(None, config, stream_mode="updates"))))
    return seen
