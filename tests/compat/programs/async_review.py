"""Async graphs (how-to "Use the graph API": async nodes, `ainvoke`/`astream`), with an
interrupt answered through `ainvoke(Command(resume=...))`."""

import asyncio
import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from langgraph.types import Command, Send, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    urls: list
    pages: Annotated[list, operator.add]
    verdict: str


async def plan(state: State):
    await asyncio.sleep(0)
    return {"pages": []}


def fetch_all(state: State):
    return [Send("fetch", url) for url in state["urls"]]


async def fetch(url: str):
    await asyncio.sleep(0.001 * len(url))
    return {"pages": [f"<{url}>"]}


async def review(state: State):
    verdict = interrupt({"pages": sorted(state["pages"])})
    return {"verdict": verdict}


async def run(checkpointer):
    builder = StateGraph(State)
    builder.add_node(plan)
    builder.add_node(fetch)
    builder.add_node(review)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fetch_all, ["fetch"])
    builder.add_edge("fetch", "review")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "async"}}
    seen = []
    chunks = [c async for c in graph.astream({"urls": ["a.io", "bb.io"], "pages": []}, config)]
    seen.append(("stream updates", sorted(chunks, key=repr)))
    state = await graph.aget_state(config)
    seen.append(("waiting", (state.next, state.interrupts)))
    seen.append(("resumed", await graph.ainvoke(Command(resume="looks good"), config)))
    history = [s async for s in graph.aget_state_history(config)]
    seen.append(("history", history))
    return seen


def main(checkpointer):
    return asyncio.run(run(checkpointer))
