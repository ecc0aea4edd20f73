"""Names LangGraph programs import or call, and the errors they catch: a store's
`InvalidNamespaceError` (a `ValueError`), `EmptyInputError`, `TAG_NOSTREAM`, a builder's
`nodes`, `get_subgraphs()`, and the `ValueError` of `RemoveMessage` for a message the
history does not hold."""

from langchain_core.messages import HumanMessage
from langgraph.constants import TAG_NOSTREAM
from langgraph.errors import EmptyInputError
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.message import RemoveMessage
from langgraph.store.base import InvalidNamespaceError
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict


class State(TypedDict):
    x: int


def caught(label, fn):
    try:
        return (label, fn())
    except ValueError as error:
        return (label, f"ValueError: {isinstance(error, InvalidNamespaceError)}")


def main(checkpointer):
    seen = [("TAG_NOSTREAM", TAG_NOSTREAM), ("EmptyInputError", issubclass(EmptyInputError,
                                                                          Exception))]
    store = InMemoryStore()
    seen.append(caught("empty namespace", lambda: store.put((), "k", {"v": 1})))
    seen.append(caught("label with a dot", lambda: store.put(("a.b",), "k", {"v": 1})))

    inner = StateGraph(State)
    inner.add_node("deep", lambda state: {"x": 2})
    inner.add_edge(START, "deep")
    middle = StateGraph(State)
    middle.add_node("inner", inner.compile())
    middle.add_edge(START, "inner")
    builder = StateGraph(State)
    builder.add_node("a", lambda state: {"x": 1})
    builder.add_node("middle", middle.compile())
    builder.add_edge(START, "a")
    builder.add_edge("a", "middle")
    seen.append(("builder nodes", sorted(builder.nodes)))
    graph = builder.compile()
    seen.append(("subgraphs", [name for name, _ in graph.get_subgraphs()]))
    seen.append(("subgraphs, recursing", [name for name, _ in graph.get_subgraphs(recurse=True)]))
    seen.append(("one namespace", [name for name, _ in graph.get_subgraphs(namespace="middle")]))

    chat = StateGraph(MessagesState)
    chat.add_node("a", lambda state: {})
    chat.add_edge(START, "a")
    chat_graph = chat.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "chat"}}
    chat_graph.invoke({"messages": [HumanMessage("hi", id="1")]}, config)
    seen.append(caught("remove an unknown message", lambda: chat_graph.update_state(
        config, {"messages": [RemoveMessage(id="9")]}
    )))
    return seen
