"""Reading a thread's history as LangGraph code does: `next()` on what `get_state_history`
returns (a generator there) takes the newest checkpoints one by one; `for` and `list(...)`
see them all, newest first."""

import operator
from typing import Annotated

from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    log: Annotated[list, operator.add]


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node("a", lambda state: {"log": ["a"]})
    builder.add_node("b", lambda state: {"log": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "h"}}
    graph.invoke({"log": []}, config)

    history = graph.get_state_history(config)
    newest = next(history)
    before = next(history)
    seen = [("newest", newest), ("the one before", before)]
    seen.append(("for", [state for state in graph.get_state_history(config)]))
    seen.append(("limit 1", next(iter(graph.get_state_history(config, limit=1)), None)))
    seen.append(
        (
            "empty thread",
            next(graph.get_state_history({"configurable": {"thread_id": "none"}}), None),
        )
    )
    return seen
