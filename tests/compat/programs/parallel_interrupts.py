"""Two parallel nodes both ask (how-to "Handle multiple interrupts"): answering one by id
shows the other still waiting, with the answered node's write in the latest state; answering
both at once; a plain resume value with two questions open is a RuntimeError."""

import operator
from typing import Annotated

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    answers: Annotated[list, operator.add]


def ask_a(state: State):
    return {"answers": [["a", interrupt("question a")]]}


def ask_b(state: State):
    return {"answers": [["b", interrupt("question b")]]}


def main(checkpointer):
    g = StateGraph(State)
    g.add_node("ask_a", ask_a)
    g.add_node("ask_b", ask_b)
    g.add_edge(START, "ask_a")
    g.add_edge(START, "ask_b")
    g.add_edge("ask_a", END)
    g.add_edge("ask_b", END)
    graph = g.compile(checkpointer=checkpointer)
    cfg = {"configurable": {"thread_id": "1"}}
    seen = [("first", graph.invoke({"answers": []}, cfg))]
    st = graph.get_state(cfg)
    seen.append(("next", st.next))
    seen.append(("interrupts", sorted(i.value for i in st.interrupts)))
    seen.append(("tasks", sorted((t.name, tuple(i.value for i in t.interrupts)) for t in st.tasks)))
    first = next(i for i in st.interrupts if i.value == "question a")
    seen.append(("one answered", graph.invoke(Command(resume={first.id: "A"}), cfg)))
    st = graph.get_state(cfg)
    seen.append(("next after one", st.next))
    seen.append(("left", [i.value for i in st.interrupts]))
    rest = {i.id: "B" for i in st.interrupts}
    seen.append(("done", graph.invoke(Command(resume=rest), cfg)))
    seen.append(("final next", graph.get_state(cfg).next))
    # a second thread: both answered at once
    cfg2 = {"configurable": {"thread_id": "2"}}
    graph.invoke({"answers": []}, cfg2)
    both = {i.id: i.value.upper() for i in graph.get_state(cfg2).interrupts}
    seen.append(("both at once", graph.invoke(Command(resume=both), cfg2)))
    # a plain resume value with two pending interrupts
    cfg3 = {"configurable": {"thread_id": "3"}}
    graph.invoke({"answers": []}, cfg3)
    try:
        graph.invoke(Command(resume="same"), cfg3)
    except RuntimeError as error:
        seen.append(("plain resume refused", str(error) != ""))
    seen.append(("still waiting", graph.get_state(cfg3).next))
    # the record of the paused checkpoint (by id) shows it as committed, on both
    history = list(graph.get_state_history(cfg))
    paused = next(s for s in history if s.next == ("ask_a", "ask_b"))
    seen.append(("record by id", graph.get_state(paused.config).values))
    # (values and next: a record's `interrupts` differ, see docs/langgraph.md; LangGraph's
    # extra input checkpoint is left out)
    steps = [(s.values, s.next) for s in history if s.next != ("__start__",)]
    seen.append(("history", steps))
    return seen
