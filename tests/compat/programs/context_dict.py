"""Run context (LangGraph 1.x "Runtime context"): a dataclass `context_schema`, given as a
plain dict to `invoke(..., context=)`; nodes read it as the dataclass, defaults filled."""

from dataclasses import dataclass

from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


@dataclass
class Context:
    user: str
    model: str = "small"


class State(TypedDict):
    out: str


def greet(state: State, runtime: Runtime[Context]):
    return {"out": f"{runtime.context.user} on {runtime.context.model}"}


def main(checkpointer):
    builder = StateGraph(State, context_schema=Context)
    builder.add_node(greet)
    builder.add_edge(START, "greet")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "ctx"}}
    seen = [("dict", graph.invoke({"out": ""}, config, context={"user": "ada"}))]
    given = Context("rita", "large")
    seen.append(("object", graph.invoke({"out": ""}, config, context=given)))
    return seen
