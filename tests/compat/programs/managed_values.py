"""Managed values (`langgraph.managed`): `RemainingSteps` and `IsLastStep` in the state let an
agent loop stop before the recursion limit ends it. Nodes and routers read them; they are
not stored, not returned, not streamed, and a node returning the whole state it got has them
left out. The budget counts as LangGraph counts it, through a pause and a resume."""

import operator
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from langgraph.managed import IsLastStep, RemainingSteps
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    seen: Annotated[list, operator.add]
    remaining_steps: RemainingSteps
    is_last_step: IsLastStep


def work(state: State):
    return {"seen": [f"work {state['remaining_steps']} {state['is_last_step']}"]}


def whole(state: State):
    state["seen"] = [f"whole {state['remaining_steps']}"]
    return state


def wrap_up(state: State):
    return {"seen": [f"wrap up with {state['remaining_steps']} left"]}


def budget(state: State):
    return "wrap_up" if state["remaining_steps"] <= 3 else "work"


def ask(state: State):
    answer = interrupt(f"go on with {state['remaining_steps']} left?")
    return {"seen": [f"ask {answer} {state['remaining_steps']}"]}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node("work", work)
    builder.add_node("wrap_up", wrap_up)
    builder.add_edge(START, "work")
    builder.add_conditional_edges("work", budget, ["work", "wrap_up"])
    builder.add_edge("wrap_up", END)
    graph = builder.compile(checkpointer=checkpointer)
    seen = []
    for limit in (6, 9):
        config = {"configurable": {"thread_id": f"loop-{limit}"}, "recursion_limit": limit}
        seen.append((f"limit {limit}", graph.invoke({"seen": []}, config)))
        seen.append((f"limit {limit} state", graph.get_state(config).values))
    config = {"configurable": {"thread_id": "stream"}, "recursion_limit": 6}
    seen.append(("values", list(graph.stream({"seen": []}, config, stream_mode="values"))))

    last = StateGraph(State)
    last.add_node("work", work)
    last.add_edge(START, "work")
    last.add_conditional_edges("work", lambda s: END if s["is_last_step"] else "work")
    config = {"configurable": {"thread_id": "last"}, "recursion_limit": 4}
    ended = last.compile(checkpointer=checkpointer).invoke({"seen": []}, config)
    seen.append(("is last step", ended))

    paused = StateGraph(State)
    paused.add_node("whole", whole)
    paused.add_node("ask", ask)
    paused.add_node("work", work)
    paused.add_edge(START, "whole")
    paused.add_edge("whole", "ask")
    paused.add_edge("ask", "work")
    asks = paused.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "ask"}, "recursion_limit": 7}
    first = asks.invoke({"seen": []}, config)
    seen.append(("paused", (first["seen"], [i.value for i in first["__interrupt__"]])))
    seen.append(("resumed", asks.invoke(Command(resume="yes"), config)))
    seen.append(("history", list(asks.get_state_history(config))))
    return seen
