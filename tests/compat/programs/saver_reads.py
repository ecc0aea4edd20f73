"""Reading a saver directly (how-to "Persistence"): `get_tuple`, `get`, a checkpoint's
`channel_values`, its metadata, and `delete_thread`."""

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
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"log": []}, config)

    seen = []
    saved = checkpointer.get_tuple(config)
    seen.append(("values", saved.checkpoint["channel_values"]))
    seen.append(
        (
            "id is the config's",
            saved.checkpoint["id"] == saved.config["configurable"]["checkpoint_id"],
        )
    )
    seen.append(("ts is text", isinstance(saved.checkpoint["ts"], str)))
    seen.append(("metadata", (saved.metadata["source"], saved.metadata["step"] > 0)))
    seen.append(("get", checkpointer.get(config)["channel_values"]))
    parent = checkpointer.get_tuple(saved.parent_config)
    seen.append(("parent log", parent.checkpoint["channel_values"]["log"]))
    seen.append(("newest step listed", max(t.metadata["step"] for t in checkpointer.list(config))))
    checkpointer.delete_thread("1")
    seen.append(("deleted", (checkpointer.get_tuple(config), checkpointer.get(config))))
    return seen
