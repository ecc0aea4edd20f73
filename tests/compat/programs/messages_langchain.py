"""A chat graph with LangChain's own message classes in its state and a checkpointer (the
LangGraph quickstart's shape): `HumanMessage` in, an `AIMessage` with a tool call, a
`ToolMessage` back; the history is stored, read back and continued on a second turn."""

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import START, MessagesState, StateGraph


def bot(state: MessagesState):
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        return {"messages": [AIMessage(content=f"the tool said {last.content}")]}
    call = {"name": "lookup", "args": {"q": last.content}, "id": f"call-{len(state['messages'])}"}
    return {"messages": [AIMessage(content="", tool_calls=[call])]}


def tool(state: MessagesState):
    call = state["messages"][-1].tool_calls[0]
    return {"messages": [ToolMessage(content=f"found {call['args']['q']}",
                                     tool_call_id=call["id"])]}


def route(state: MessagesState):
    return "tool" if state["messages"][-1].tool_calls else "__end__"


def main(checkpointer):
    builder = StateGraph(MessagesState)
    builder.add_node(bot)
    builder.add_node(tool)
    builder.add_edge(START, "bot")
    builder.add_conditional_edges("bot", route)
    builder.add_edge("tool", "bot")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "lc"}}
    graph.invoke({"messages": [HumanMessage(content="pizza")]}, config)
    result = graph.invoke({"messages": [HumanMessage(content="tea")]}, config)
    seen = [("messages", [(type(m).__name__, m.content) for m in result["messages"]])]
    stored = graph.get_state(config).values["messages"]
    seen.append(("stored", [(type(m).__name__, getattr(m, "tool_call_id", None))
                            for m in stored]))
    seen.append(("calls", [m.tool_calls for m in stored if isinstance(m, AIMessage)]))
    return seen
