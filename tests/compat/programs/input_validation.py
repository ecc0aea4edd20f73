"""Validating human input (how-to "Review and edit with interrupt": ask again until the answer
is valid): each invalid answer asks anew; the paused checkpoint's record in the history lists
its task with the question it asked last; replay and an operator's update_state past it."""

import operator
from datetime import datetime
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class S(TypedDict):
    age: int
    log: Annotated[list, operator.add]


def get_age(state: S):
    prompt = "What is your age?"
    while True:
        answer = interrupt(prompt)
        if isinstance(answer, int) and answer > 0:
            break
        prompt = f"{answer!r} is not valid"
    return {"age": answer, "log": ["age"]}


def after(state: S):
    return {"log": [f"after {state['age']}"]}


def main(checkpointer):
    g = StateGraph(S).add_node("get_age", get_age).add_node("after", after)
    g.add_edge(START, "get_age").add_edge("get_age", "after")
    graph = g.compile(checkpointer=checkpointer)
    cfg = {"configurable": {"thread_id": "v"}}
    seen = [("1", graph.invoke({"log": []}, cfg))]
    seen.append(("2", graph.invoke(Command(resume="ten"), cfg)))
    seen.append(("state 2", [i.value for i in graph.get_state(cfg).interrupts]))
    seen.append(("3", graph.invoke(Command(resume=-1), cfg)))
    both = ["updates", "values"]
    seen.append(("stream 4", list(graph.stream(Command(resume=33), cfg, stream_mode=both))))
    hist = list(graph.get_state_history(cfg))
    records = [h for h in hist if h.next != ("__start__",)]
    seen.append(("hist", [(h.values, h.next, [i.value for i in h.interrupts]) for h in records]))
    seen.append(("record tasks", [[t.name for t in h.tasks] for h in records]))
    paused = next(h for h in hist if h.next == ("get_age",))
    seen.append(("tasks", [(t.name, [i.value for i in t.interrupts]) for t in paused.tasks]))
    by_id = graph.get_state(paused.config)
    seen.append(("by id", [(t.name, [i.value for i in t.interrupts]) for t in by_id.tasks]))
    when = datetime.fromisoformat(by_id.created_at)  # an ISO 8601 string, on both
    seen.append(("created_at", (type(by_id.created_at).__name__, when.tzinfo is not None)))
    seen.append(("replay", graph.invoke(None, paused.config)))
    # update_state as the node with the answer, skipping the question
    c2 = {"configurable": {"thread_id": "skip"}}
    graph.invoke({"log": []}, c2)
    graph.update_state(c2, {"age": 50, "log": ["typed by operator"]}, as_node="get_age")
    st = graph.get_state(c2)
    seen.append(("skipped", (st.values, st.next, [i.value for i in st.interrupts])))
    seen.append(("continue", graph.invoke(None, c2)))
    return seen
