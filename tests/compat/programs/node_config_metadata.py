"""A node reading `config["metadata"]` (and `get_config()["metadata"]`) to log where it runs:
LangGraph's `langgraph_node`, `langgraph_step`, `langgraph_triggers`, `langgraph_path` and
`langgraph_checkpoint_ns`, with the caller's metadata and the thread; for a node reached by
name, a `Send` task and a node inside a subgraph, with a saver and without one. Namespaces
are compared by their node names (their task ids are each engine's own)."""

import operator
from typing import Annotated

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.graph import START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list, operator.add]


def names(ns):
    return [part.split(":")[0] for part in ns.split("|")]


def described(metadata):
    shown = dict(metadata)
    shown["langgraph_checkpoint_ns"] = names(shown["langgraph_checkpoint_ns"])
    if "checkpoint_ns" in shown:
        shown["checkpoint_ns"] = names(shown["checkpoint_ns"])
    return sorted(shown.items())


def logging_node(name):
    def node(state, config: RunnableConfig):
        same = get_config()["metadata"] == config["metadata"]
        return {"log": [(name, described(config["metadata"]), same)]}

    return node


def build(checkpointer=None):
    inner = StateGraph(State)
    inner.add_node("inner", logging_node("inner"))
    inner.add_edge(START, "inner")
    builder = StateGraph(State)
    builder.add_node("first", logging_node("first"))
    builder.add_node("mapped", logging_node("mapped"))
    builder.add_node("sub", inner.compile())
    builder.add_edge(START, "first")
    builder.add_conditional_edges("first", lambda s: [Send("mapped", {"log": []}), "sub"])
    return builder.compile(checkpointer=checkpointer)


def main(checkpointer):
    config = {"configurable": {"thread_id": "t1"}, "metadata": {"requested_by": "ann"}}
    result = build(checkpointer).invoke({"log": []}, config)
    seen = [(f"with a saver: {entry[0]}", entry[1:]) for entry in sorted(result["log"])]
    result = build().invoke({"log": []})
    seen += [(f"without one: {entry[0]}", entry[1:]) for entry in sorted(result["log"])]
    return seen
