"""What a snapshot's `interrupts` list (LangGraph 1.x): the thread's latest state lists the
questions still waiting; a checkpoint asked for by id, and the history, list what its step
raised, answered since or not. A node that asks twice, and parallel nodes answered one by one."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list, operator.add]


def ask_twice(state: State):
    first = interrupt("first?")
    second = interrupt("second?")
    return {"log": [first, second]}


def ask(question):
    def node(state: State):
        return {"log": [f"{question}={interrupt(question)}"]}

    return node


def main(checkpointer):
    seen = []
    builder = StateGraph(State)
    builder.add_node("ask", ask_twice)
    builder.add_edge(START, "ask")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "twice"}}
    seen.append(("asked", graph.invoke({"log": []}, config)))
    seen.append(("asked again", graph.invoke(Command(resume="A"), config)))
    state = graph.get_state(config)
    seen.append(("latest", state.interrupts))
    seen.append(("record", graph.get_state(state.config).interrupts))
    seen.append(("done", graph.invoke(Command(resume="B"), config)))
    seen.append(("history", list(graph.get_state_history(config))))

    builder = StateGraph(State)
    for question in ("left", "right", "middle"):
        builder.add_node(question, ask(question))
        builder.add_edge(START, question)
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "parallel"}}
    graph.invoke({"log": []}, config)
    for question in ("left", "middle"):
        waiting = graph.get_state(config).interrupts
        answer = {i.id: question.upper() for i in waiting if i.value == question}
        result = graph.invoke(Command(resume=answer), config)
        # (the order of `__interrupt__` follows the order tasks finished in LangGraph)
        asked = sorted(i.value for i in result["__interrupt__"])
        seen.append((f"{question} answered", (result["log"], asked)))
        state = graph.get_state(config)
        seen.append((f"latest after {question}", (state.values, state.next, state.interrupts)))
        record = graph.get_state(state.config)
        seen.append((f"record after {question}", (record.values, record.next, record.interrupts)))
    rest = {i.id: "R" for i in graph.get_state(config).interrupts}
    seen.append(("all answered", graph.invoke(Command(resume=rest), config)))
    seen.append(("parallel history", list(graph.get_state_history(config))))
    return seen
