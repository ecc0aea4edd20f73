"""Multiple schemas (how-to "Use multiple schemas", "Pass private state between nodes"): a
node whose first parameter is typed with another TypedDict reads only that schema's keys,
and its keys become channels other nodes may write."""

import operator
from typing import Annotated

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

seen_inputs = []


class InputState(TypedDict):
    user_input: str


class OutputState(TypedDict):
    graph_output: str


class OverallState(TypedDict):
    foo: str
    user_input: str
    graph_output: str


class PrivateState(TypedDict):
    bar: str
    trail: Annotated[list, operator.add]


def node_1(state: InputState) -> OverallState:
    seen_inputs.append(("node_1", sorted(state)))
    return {"foo": state["user_input"] + " name"}


def node_2(state: OverallState) -> PrivateState:
    seen_inputs.append(("node_2", sorted(state)))
    return {"bar": state["foo"] + " is", "trail": ["node_2"]}


def node_3(state: PrivateState) -> OutputState:
    seen_inputs.append(("node_3", sorted(state)))
    return {"graph_output": state["bar"] + " Lance", "trail": ["node_3"]}


class Overall(TypedDict):
    a: str

class Node1Output(TypedDict):
    private_data: str

class Node2Input(TypedDict):
    private_data: str

def first(state: Overall) -> Node1Output:
    return {"private_data": "set by first"}

def second(state: Node2Input) -> Overall:
    return {"a": "second saw " + state["private_data"]}


class Wide(TypedDict):
    a: str
    b: str


class Narrow(TypedDict):
    a: str


def narrow(state):
    return {"b": "narrow saw " + ",".join(sorted(state))}


def main(checkpointer):
    seen_inputs.clear()
    builder = StateGraph(OverallState, input_schema=InputState, output_schema=OutputState)
    builder.add_node("node_1", node_1)
    builder.add_node("node_2", node_2)
    builder.add_node("node_3", node_3)
    builder.add_edge(START, "node_1")
    builder.add_edge("node_1", "node_2")
    builder.add_edge("node_2", "node_3")
    builder.add_edge("node_3", END)
    graph = builder.compile(checkpointer=checkpointer)
    cfg = {"configurable": {"thread_id": "1"}}
    seen = [("invoke", graph.invoke({"user_input": "My"}, cfg))]
    seen.append(("inputs", list(seen_inputs)))
    state = graph.get_state(cfg)
    seen.append(("values", state.values))
    history = graph.get_state_history(cfg)
    seen.append(("history", [(s.values, s.next) for s in history if s.next != ("__start__",)]))
    seen.append(("updates", list(graph.stream({"user_input": "Your"},
                                             {"configurable": {"thread_id": "2"}},
                                             stream_mode="updates"))))
    seen.append(("values stream", list(graph.stream({"user_input": "His"},
                                                    {"configurable": {"thread_id": "3"}},
                                                    stream_mode="values"))))
    # an update of a private channel from outside, then a fork from it
    graph.update_state(cfg, {"bar": "Our"}, as_node="node_2")
    seen.append(("after update", graph.get_state(cfg).values))
    seen.append(("fork", graph.invoke(None, cfg)))

    # "Pass private state between nodes": node_1 writes a key only node_2's input declares
    b2 = StateGraph(Overall)
    b2.add_node("first", first)
    b2.add_node("second", second)
    b2.add_edge(START, "first")
    b2.add_edge("first", "second")
    g2 = b2.compile(checkpointer=InMemorySaver())
    seen.append(("private pass", g2.invoke({"a": "start"}, {"configurable": {"thread_id": "p"}})))
    # add_node(..., input_schema=...): the node reads only the schema it names
    b3 = StateGraph(Wide)
    b3.add_node("narrow", narrow, input_schema=Narrow)
    b3.add_edge(START, "narrow")
    g3 = b3.compile()
    seen.append(("input_schema=", g3.invoke({"a": "x", "b": "y"})))
    return seen
