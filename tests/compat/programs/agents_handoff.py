"""Multi-agent hand-offs (how-to "Build multi-agent systems", "Navigate to a node in a parent
graph"): each agent is a subgraph, and one of its nodes returns
`Command(goto=..., graph=Command.PARENT)` to pass the conversation to another agent of the
parent graph. Also: a hand-off from a graph invoked inside a node function, an interrupt in
the agent handed to, and the error of a hand-off from a graph that has no parent."""

import operator
from typing import Annotated, Literal

from langgraph.errors import ParentCommand
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list, operator.add]
    question: str
    active: str


def make_agent(name, other, knows):
    """An agent subgraph: it thinks, then answers if the question is about what it knows,
    or hands the question to `other` in the parent graph."""

    def think(state: State):
        return {"log": [f"{name} thinks"]}

    def answer_or_hand_off(state: State) -> Command[Literal["answer"]]:
        if knows in state["question"]:
            return Command(goto="answer")
        return Command(
            goto=other,
            update={"log": [f"{name} hands off to {other}"], "active": other},
            graph=Command.PARENT,
        )

    def answer(state: State):
        return {"log": [f"{name} answers"]}

    builder = StateGraph(State)
    builder.add_node("think", think)
    builder.add_node("route", answer_or_hand_off)
    builder.add_node("answer", answer)
    builder.add_edge(START, "think")
    builder.add_edge("think", "route")
    builder.add_edge("answer", END)
    return builder.compile()


def billing_desk(state: State):
    """A plain node that runs an agent graph itself: the agent's hand-off is this node's."""
    desk = make_agent("desk", "human", "invoice")
    result = desk.invoke({"log": [], "question": state["question"], "active": "desk"})
    return {"log": ["desk done: " + result["log"][-1]]}


def human(state: State):
    reply = interrupt({"question": state["question"]})
    return {"log": [f"human says {reply}"], "active": "human"}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node("flights", make_agent("flights", "hotels", "flight"))
    builder.add_node("hotels", make_agent("hotels", "billing_desk", "hotel"))
    builder.add_node("billing_desk", billing_desk)
    builder.add_node("human", human)
    builder.add_edge(START, "flights")
    graph = builder.compile(checkpointer=checkpointer)

    seen = []
    config = {"configurable": {"thread_id": "flight"}}
    seen.append(("answered at once", graph.invoke({"log": [], "question": "a flight"}, config)))

    config = {"configurable": {"thread_id": "hotel"}}
    seen.append(("handed off once", graph.invoke({"log": [], "question": "a hotel"}, config)))
    seen.append(("history", list(graph.get_state_history(config))))

    config = {"configurable": {"thread_id": "refund"}}
    seen.append(("to a person", graph.invoke({"log": [], "question": "a refund"}, config)))
    state = graph.get_state(config)
    seen.append(("waiting", (state.next, state.interrupts)))
    seen.append(("answered", graph.invoke(Command(resume="yes"), config)))

    config = {"configurable": {"thread_id": "stream"}}
    chunks = graph.stream(
        {"log": [], "question": "a hotel"}, config, stream_mode="updates", subgraphs=True
    )
    seen.append(("stream", [(len(namespace), chunk) for namespace, chunk in chunks]))

    lone = make_agent("lone", "nowhere", "flight")
    try:
        lone.invoke({"log": [], "question": "a train", "active": "lone"})
    except ParentCommand as error:
        seen.append(("no parent", type(error).__name__))
    return seen
