"""`saver.list(None, filter=...)` finds checkpoints across every thread, by the config's
`metadata` and by its own `configurable` keys (LangGraph copies plain ones, such as a user
or team name, into each checkpoint's metadata). On the memory and SQLite savers; compared
as the set of (thread, value) found, the counts of checkpoints per run being each engine's
(docs/langgraph.md)."""

import sqlite3

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    x: int


def run_threads(saver):
    builder = StateGraph(State)
    builder.add_node("a", lambda state: {"x": state["x"] + 1})
    builder.add_edge(START, "a")
    graph = builder.compile(checkpointer=saver)
    for thread, user, team in (("t1", "bob", "red"), ("t2", "bob", "blue"), ("t3", "eve", "red")):
        graph.invoke({"x": 0}, {"configurable": {"thread_id": thread, "team": team},
                                "metadata": {"user": user}})
    config = {"configurable": {"thread_id": "t1", "team": "green"}}
    graph.update_state(config, {"x": 5})


def found(saver, **filter):
    return sorted({
        (t.config["configurable"]["thread_id"], tuple(t.metadata[k] for k in filter))
        for t in saver.list(None, filter=filter)
    })


def main(checkpointer):
    seen = []
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    for name, saver in (("memory", InMemorySaver()), ("sqlite", SqliteSaver(connection))):
        run_threads(saver)
        seen.append((f"{name}: bob's", found(saver, user="bob")))
        seen.append((f"{name}: team red", found(saver, team="red")))
        seen.append((f"{name}: bob in red", found(saver, user="bob", team="red")))
        seen.append((f"{name}: updated by green", found(saver, team="green", source="update")))
        seen.append((f"{name}: nobody", found(saver, user="zoe")))
        seen.append((f"{name}: limit", len(list(saver.list(None, limit=2)))))
    return seen
