"""Node caching (LangGraph's "Node caching" how-to): `add_node(..., cache_policy=CachePolicy(
ttl=...))` with `compile(cache=InMemoryCache())` or a `SqliteCache`: a task whose input the
cache has seen takes the stored writes instead of running (its `updates` chunk marked
`cached`), on any thread; a changed input, an expired entry, `clear_cache()` or a graph
compiled without the cache runs the node again; `key_func` decides what counts as the same
input. A Send task and a node that routes with a Command are cached with their writes."""

import operator
import tempfile
import time
from pathlib import Path
from typing import Annotated

from langgraph.cache.memory import InMemoryCache
from langgraph.cache.sqlite import SqliteCache
from langgraph.graph import END, START, StateGraph
from langgraph.types import CachePolicy, Command, Send
from typing_extensions import TypedDict


class State(TypedDict):
    x: int
    y: int
    found: Annotated[list, operator.add]


CALLS = []


def expensive(state: State):
    CALLS.append(("expensive", state["x"]))
    return {"y": state["x"] * 10}


def fan(state: State):
    return {"y": 0}


def spread(state: State):
    return [Send("lookup", {"x": n, "y": 0, "found": []}) for n in (1, 2, 4)]


def lookup(state: State):
    CALLS.append(("lookup", state["x"]))
    return {"found": [state["x"] + 100]}


def decide(state: State):
    CALLS.append(("decide", state["x"]))
    return Command(update={"y": 1}, goto=END if state["x"] > 5 else "expensive")


def parity(state: State):
    return str(state["x"] % 2)


def build(cache, ttl=None, key_func=None):
    builder = StateGraph(State)
    policy = CachePolicy(ttl=ttl) if key_func is None else CachePolicy(key_func=key_func)
    builder.add_node("expensive", expensive, cache_policy=policy)
    builder.add_edge(START, "expensive")
    builder.add_edge("expensive", END)
    return builder.compile(cache=cache)


def main(checkpointer):
    seen = []
    graph = build(InMemoryCache(), ttl=1)
    for n, x in enumerate([2, 2, 3, 2]):
        config = {"configurable": {"thread_id": f"t{n}"}}
        seen.append((f"run {n}", list(graph.stream({"x": x, "found": []}, config))))
    seen.append(("calls", list(CALLS)))
    time.sleep(1.05)
    seen.append(("expired", graph.invoke({"x": 2, "found": []})))
    graph.clear_cache()
    seen.append(("cleared", graph.invoke({"x": 2, "found": []})))
    seen.append(("no cache", build(None).invoke({"x": 2, "found": []})))
    seen.append(("calls after", list(CALLS)))
    CALLS.clear()

    keyed = build(InMemoryCache(), key_func=parity)
    seen.append(("same key", [keyed.invoke({"x": x, "found": []}) for x in (4, 6, 5)]))
    seen.append(("keyed calls", list(CALLS)))
    CALLS.clear()

    builder = StateGraph(State)
    builder.add_node("fan", fan)
    builder.add_node("lookup", lookup, cache_policy=CachePolicy())
    builder.add_node("decide", decide, cache_policy=CachePolicy())
    builder.add_node("expensive", expensive)
    builder.add_edge(START, "fan")
    builder.add_conditional_edges("fan", spread, ["lookup"])
    builder.add_edge("lookup", "decide")
    with tempfile.TemporaryDirectory() as tmp:
        cache = SqliteCache(path=str(Path(tmp) / "cache.db"))
        fanned = builder.compile(cache=cache, checkpointer=checkpointer)
        for n in range(2):
            config = {"configurable": {"thread_id": f"fan{n}"}}
            seen.append((f"fan {n}", fanned.invoke({"x": 7, "found": []}, config)))
            seen.append((f"fan {n} updates", [
                sorted(chunk) for chunk in fanned.stream({"x": 3, "found": []}, config)
            ]))
        seen.append(("fan calls", sorted(CALLS)))
    return seen
