"""Runtime context (LangGraph 1.x, "Runtime context" / context_schema): what a caller hands a
run with invoke(..., context=...) reaches every node that declares `runtime: Runtime[Ctx]`,
get_runtime() and a subgraph, with the store and the stream writer beside it;
a resume is given its context again."""

import asyncio
import operator
from dataclasses import dataclass
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime, get_runtime
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict


@dataclass
class Ctx:
    user: str
    tone: str = "plain"


class State(TypedDict):
    log: Annotated[list, operator.add]


def greet(state: State, runtime: Runtime[Ctx]):
    runtime.store.put(("users",), runtime.context.user, {"seen": True})
    runtime.stream_writer({"greeting for": runtime.context.user})
    return {"log": [f"hi {runtime.context.user} ({runtime.context.tone})"]}


def helper(state: State):  # no parameter: the runtime all the same
    return {"log": [f"helper for {get_runtime(Ctx).context.user}"]}


def later(state: State, runtime: Runtime[Ctx]):
    answer = interrupt(f"ok, {runtime.context.user}?")
    return {"log": [f"{runtime.context.user} said {answer}"]}


def child_node(state: State, runtime: Runtime[Ctx]):
    return {"log": [f"child sees {runtime.context.user}"]}


def build(checkpointer, store):
    child = StateGraph(State, context_schema=Ctx)
    child.add_node(child_node)
    child.add_edge(START, "child_node")
    builder = StateGraph(State, context_schema=Ctx)
    builder.add_node(greet)
    builder.add_node(helper)
    builder.add_node("sub", child.compile())
    builder.add_node(later)
    builder.add_edge(START, "greet")
    builder.add_edge("greet", "helper")
    builder.add_edge("helper", "sub")
    builder.add_edge("sub", "later")
    return builder.compile(checkpointer=checkpointer, store=store)


async def finish(graph, config):  # an async caller: ainvoke takes the context too
    return await graph.ainvoke(Command(resume="yes"), config, context=Ctx(user="bo"))


def main(checkpointer):
    store = InMemoryStore()
    graph = build(checkpointer, store)
    config = {"configurable": {"thread_id": "ctx"}}
    seen = []
    chunks = list(graph.stream({"log": []}, config, stream_mode=["custom", "updates"],
                               context=Ctx(user="ann", tone="warm")))
    seen.append(("custom", [c for mode, c in chunks if mode == "custom"]))
    seen.append(("paused at", [c for mode, c in chunks if mode == "updates" and
                               "__interrupt__" in c]))
    result = asyncio.run(finish(graph, config))
    seen.append(("log", result["log"]))
    seen.append(("stored", store.get(("users",), "ann").value))
    return seen
