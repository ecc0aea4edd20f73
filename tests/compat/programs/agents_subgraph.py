"""Subgraphs (how-to "Use subgraphs"): a compiled graph as a node, sharing a state key, with
an interrupt inside the child, streamed with subgraphs=True."""

from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


class SubgraphState(TypedDict):
    foo: str
    bar: str


def subgraph_node_1(state: SubgraphState):
    return {"bar": "bar"}


def subgraph_node_2(state: SubgraphState):
    answer = interrupt("check the bar")
    return {"foo": state["foo"] + state["bar"] + answer}


class ParentState(TypedDict):
    foo: str


def node_1(state: ParentState):
    return {"foo": "hi! " + state["foo"]}


def main(checkpointer):
    sub = StateGraph(SubgraphState)
    sub.add_node(subgraph_node_1)
    sub.add_node(subgraph_node_2)
    sub.add_edge(START, "subgraph_node_1")
    sub.add_edge("subgraph_node_1", "subgraph_node_2")
    subgraph = sub.compile()

    builder = StateGraph(ParentState)
    builder.add_node("node_1", node_1)
    builder.add_node("node_2", subgraph)
    builder.add_edge(START, "node_1")
    builder.add_edge("node_1", "node_2")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "sub"}}
    seen = [("paused", graph.invoke({"foo": "foo"}, config))]
    state = graph.get_state(config, subgraphs=True)
    seen.append(("waiting", (state.next, state.interrupts)))
    chunks = list(graph.stream(Command(resume="!"), config, subgraphs=True))
    seen.append(("stream subgraphs", [(len(ns), chunk) for ns, chunk in chunks]))
    seen.append(("final", graph.get_state(config).values))
    return seen
