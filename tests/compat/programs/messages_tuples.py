"""Chat history in LangChain's short forms (how-to "Use the graph API", quickstarts): input
messages as `("user", "hi")` tuples, a node returning one `("assistant", ...)` tuple, and a
bare string; each becomes one message of its role."""

from langgraph.graph import START, MessagesState, StateGraph


def bot(state: MessagesState):
    last = state["messages"][-1]
    return {"messages": ("assistant", f"you said {last.content}")}


def main(checkpointer):
    builder = StateGraph(MessagesState)
    builder.add_node(bot)
    builder.add_edge(START, "bot")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "tuples"}}
    first = graph.invoke({"messages": [("system", "be brief"), ("user", "hi")]}, config)
    seen = [("first", [(m.type, m.content) for m in first["messages"]])]
    second = graph.invoke({"messages": "again"}, config)
    seen.append(("second", [(m.type, m.content) for m in second["messages"]]))
    return seen
