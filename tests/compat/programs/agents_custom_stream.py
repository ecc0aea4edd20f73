"""Custom streaming (how-to "Stream outputs": get_stream_writer and lists of modes)."""

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict):
    query: str
    answer: str


def node(state: State):
    writer = get_stream_writer()
    writer({"custom_key": "Generating custom data inside node"})
    writer({"progress": 50})
    return {"answer": "some data"}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node(node)
    builder.add_edge(START, "node")
    graph = builder.compile(checkpointer=checkpointer)
    seen = []
    config = {"configurable": {"thread_id": "custom"}}
    seen.append(("stream custom", list(graph.stream({"query": "q"}, config, stream_mode="custom"))))
    config = {"configurable": {"thread_id": "custom-2"}}
    seen.append(("stream custom+updates", list(graph.stream(
        {"query": "q"}, config, stream_mode=["updates", "custom"]
    ))))
    return seen
