"""Names LangGraph programs import from `langgraph.graph`, `langgraph.types` and
`langgraph.errors` (`add_messages`, `StreamWriter`, `GraphInterrupt`), a node's `writer:
StreamWriter` parameter (LangGraph hands it the stream writer), and the documented pattern of
re-raising `GraphInterrupt` from a `try` around `interrupt()`."""

import operator
from typing import Annotated

from langgraph.errors import GraphInterrupt
from langgraph.graph import START, StateGraph, add_messages
from langgraph.types import Command, StreamWriter, interrupt
from typing_extensions import TypedDict


class State(TypedDict):
    messages: Annotated[list, add_messages]
    log: Annotated[list, operator.add]


def talk(state: State, writer: StreamWriter):
    writer({"progress": 50})
    writer({"progress": 100})
    return {"messages": [{"role": "assistant", "content": "hi", "id": "m1"}], "log": ["talk"]}


def careful(state: State):
    try:
        answer = interrupt("sure?")
    except GraphInterrupt:
        raise
    except Exception:
        answer = "swallowed"
    return {"log": [answer]}


def main(checkpointer):
    builder = StateGraph(State)
    builder.add_node("talk", talk)
    builder.add_node("careful", careful)
    builder.add_edge(START, "talk")
    builder.add_edge("talk", "careful")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "w"}}
    chunks = graph.stream({"messages": [], "log": []}, config, stream_mode=["custom", "updates"])
    seen = [("stream", list(chunks))]
    seen.append(("resumed", graph.invoke(Command(resume="yes"), config)))
    seen.append(
        ("writer outside a stream", graph.invoke({"log": []}, {"configurable": {"thread_id": "x"}}))
    )
    return seen
