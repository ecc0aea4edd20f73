"""Persistence (how-to "Add memory"): a chatbot whose thread remembers the conversation."""

import uuid
from typing import Annotated

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from scripted import ScriptedModel
from typing_extensions import TypedDict

model = ScriptedModel()


class State(TypedDict):
    messages: Annotated[list, add_messages]


def chatbot(state: State):
    return {"messages": [model.invoke(state["messages"])]}


def build(checkpointer=None):
    builder = StateGraph(State)
    builder.add_node(chatbot)
    builder.add_edge(START, "chatbot")
    builder.add_edge("chatbot", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def main(checkpointer):
    graph = build(checkpointer)
    seen = []
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    result = graph.invoke({"messages": [{"role": "user", "content": "hi! I'm bob"}]}, config)
    seen.append(("first turn", result["messages"]))
    result = graph.invoke({"messages": [{"role": "user", "content": "what's my name?"}]}, config)
    seen.append(("second turn", result["messages"][-1]))

    other = {"configurable": {"thread_id": 2}}  # an int thread id, as LangGraph allows
    result = graph.invoke({"messages": [{"role": "user", "content": "who am I?"}]}, other)
    seen.append(("other thread", result["messages"]))

    snapshot = graph.get_state(config)
    seen.append(("snapshot", snapshot))
    thread_id = config["configurable"]["thread_id"]
    same_thread = snapshot.config["configurable"]["thread_id"] == thread_id
    seen.append(("snapshot config reads as a dict", same_thread))
    seen.append(("metadata reads as a dict", snapshot.metadata["source"]))
    seen.append(("history", list(graph.get_state_history(config))))

    seen.append(("stream values", list(graph.stream(
        {"messages": [{"role": "user", "content": "bye"}]}, config, stream_mode="values"
    ))))
    return seen
