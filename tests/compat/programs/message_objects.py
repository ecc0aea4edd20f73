"""A chatbot with a tool, written as LangGraph's tutorials write it: messages read as
objects (`state["messages"][-1].content`, `.type`, `.tool_calls`, `.id`), a router on
`tool_calls`, a tool message answering a call, the history kept across calls (read back
from the saver) and `pretty_repr()`."""

from langgraph.graph import END, START, MessagesState, StateGraph


def chatbot(state: MessagesState):
    last = state["messages"][-1]
    if last.type == "human" and "weather" in last.content:
        call = {"name": "weather", "args": {"city": "Oslo"}, "id": f"call-{len(state['messages'])}"}
        return {"messages": [{"role": "assistant", "content": "", "tool_calls": [call]}]}
    if last.type == "tool":
        return {"messages": [{"role": "assistant", "content": f"It is {last.content}."}]}
    return {"messages": [{"role": "assistant", "content": f"You said: {last.content}"}]}


def tools(state: MessagesState):
    call = state["messages"][-1].tool_calls[0]
    reply = {
        "role": "tool",
        "content": f"sunny in {call['args']['city']}",
        "tool_call_id": call["id"],
    }
    return {"messages": [reply]}


def route(state: MessagesState):
    return "tools" if state["messages"][-1].tool_calls else END


def main(checkpointer):
    builder = StateGraph(MessagesState)
    builder.add_node("chatbot", chatbot)
    builder.add_node("tools", tools)
    builder.add_edge(START, "chatbot")
    builder.add_conditional_edges("chatbot", route, ["tools", END])
    builder.add_edge("tools", "chatbot")
    graph = builder.compile(checkpointer=checkpointer)
    config = {"configurable": {"thread_id": "chat"}}

    seen = []
    for text in ["hello", "what is the weather?", "thanks"]:
        result = graph.invoke({"messages": [{"role": "user", "content": text}]}, config)
        last = result["messages"][-1]
        seen.append((text, (last.type, last.content)))
    messages = graph.get_state(config).values["messages"]
    seen.append(("types", [m.type for m in messages]))
    seen.append(("contents", [m.content for m in messages]))
    seen.append(("ids are set", all(m.id for m in messages)))
    seen.append(
        ("tool call", (messages[3].tool_calls[0]["name"], messages[3].tool_calls[0]["args"]))
    )
    seen.append(("tool answer", messages[4].tool_call_id == messages[3].tool_calls[0]["id"]))
    seen.append(("no tool calls", messages[1].tool_calls))
    seen.append(("pretty", messages[0].pretty_repr()))
    return seen
