"""`Command(resume=..., goto=..., update=...)`: answer the interrupt and also send the graph
to another node. The goto's node runs beside the resumed one, in the same superstep, seeing
the command's update; the run then goes on from both."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Command, Send, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list, operator.add]
    note: str


def ask(state: State):
    return {"log": [f"ask:{interrupt('approve?')}:{state['note']}"]}


def audit(state: State):
    return {"log": [f"audit:{state['note']}:{len(state['log'])}"]}


def notify(who: str):
    return {"log": [f"notify:{who}"]}


def build(checkpointer):
    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_node("audit", audit)
    builder.add_node("notify", notify)
    builder.add_node("after", lambda state: {"log": ["after"]})
    builder.add_edge(START, "ask")
    builder.add_edge("ask", "after")
    return builder.compile(checkpointer=checkpointer)


def main(checkpointer):
    graph = build(checkpointer)
    seen = []
    config = {"configurable": {"thread_id": "goto"}}
    seen.append(("paused", graph.invoke({"log": [], "note": ""}, config)))
    command = Command(resume="yes", goto="audit", update={"note": "n"})
    # the two tasks of the resumed step stream in the order they finish: compared sorted
    chunks = list(graph.stream(command, config, stream_mode="updates"))
    seen.append(("resumed", sorted(chunks[:2], key=repr) + chunks[2:]))
    seen.append(("state", graph.get_state(config)))
    # (LangGraph also keeps the state before the input, next == ("__start__",))
    steps = [s.next for s in graph.get_state_history(config) if s.next != ("__start__",)]
    seen.append(("steps", steps))

    config = {"configurable": {"thread_id": "send"}}
    graph.invoke({"log": [], "note": ""}, config)
    seen.append(("with a Send", graph.invoke(
        Command(resume="ok", goto=[Send("notify", "ops"), "audit"]), config
    )))
    return seen
