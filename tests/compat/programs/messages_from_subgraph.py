"""`stream_mode="messages"` while a chat model streams inside a subgraph: without
`subgraphs=True` the parent's stream gets the subgraph's message whole, once, under the
parent's node (the tokens stay inside); with it, the tokens come under the subgraph's
namespace."""

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph


def build():
    model = GenericFakeChatModel(messages=iter([AIMessage("hello there friend")] * 2))
    inner = StateGraph(MessagesState)
    inner.add_node("call_model", lambda state: {"messages": [model.invoke(state["messages"])]})
    inner.add_edge(START, "call_model")
    builder = StateGraph(MessagesState)
    builder.add_node("agent", inner.compile())
    builder.add_edge(START, "agent")
    return builder.compile()


def names(ns):
    return "/".join(part.split(":")[0] for part in ns)


def main(checkpointer):
    graph = build()
    question = {"messages": [HumanMessage("hi")]}
    seen = [("without subgraphs", [
        (type(message).__name__, message.content, meta["langgraph_node"])
        for message, meta in graph.stream(question, stream_mode="messages")
    ])]
    seen.append(("with subgraphs", [
        (names(ns), type(message).__name__, message.content, meta["langgraph_node"])
        for ns, (message, meta) in graph.stream(question, stream_mode="messages",
                                                subgraphs=True)
    ]))
    return seen
