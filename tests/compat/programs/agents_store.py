"""Long-term memory (how-to "Add memory": a store shared across threads)."""

from typing import Annotated

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict


class State(TypedDict):
    messages: Annotated[list, add_messages]


def call_model(state: State, config: RunnableConfig, *, store: BaseStore):
    user_id = config["configurable"]["user_id"]
    namespace = ("memories", user_id)
    last = state["messages"][-1]
    text = last["content"] if isinstance(last, dict) else last.content
    if text.startswith("remember: "):
        store.put(namespace, str(len(store.search(namespace))), {"data": text[10:]})
    memories = sorted(item.value["data"] for item in store.search(namespace))
    return {"messages": [{"role": "assistant", "content": f"I know: {memories}"}]}


def main(checkpointer):
    store = InMemoryStore()
    builder = StateGraph(State)
    builder.add_node(call_model)
    builder.add_edge(START, "call_model")
    graph = builder.compile(checkpointer=checkpointer, store=store)
    seen = []
    for thread, text in (("1", "remember: I like tea"), ("2", "what do you know?")):
        config = {"configurable": {"thread_id": thread, "user_id": "ann"}}
        result = graph.invoke({"messages": [{"role": "user", "content": text}]}, config)
        seen.append((f"thread {thread}", result["messages"][-1]))
    other = {"configurable": {"thread_id": "3", "user_id": "bob"}}
    result = graph.invoke({"messages": [{"role": "user", "content": "and me?"}]}, other)
    seen.append(("other user", result["messages"][-1]))
    seen.append(("namespaces", sorted(store.list_namespaces(prefix=("memories",)))))
    return seen
