"""Chat streaming (how-to "Stream LLM tokens"), with LangChain's deterministic fake chat model
in place of a provider: `stream_mode="messages"` yields the model's tokens as they come, then
the message a node returns, each with the node it came from; mixed with `updates`; and
`astream` the same. A message the node was given is not sent again."""

import asyncio

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph


def main(checkpointer):
    model = FakeListChatModel(responses=["hi bob", "bye"])

    def bot(state: MessagesState):
        return {"messages": [model.invoke(state["messages"])]}

    def plain(state: MessagesState):
        return {"messages": [AIMessage("plain", id="plain-1"), state["messages"][0]]}

    builder = StateGraph(MessagesState)
    builder.add_node(bot)
    builder.add_node(plain)
    builder.add_edge(START, "bot")
    builder.add_edge("bot", "plain")
    graph = builder.compile(checkpointer=checkpointer)

    def shown(message, meta):
        return type(message).__name__, message.content, meta["langgraph_node"], meta["thread_id"]

    one = {"configurable": {"thread_id": "chat-1"}}
    seen = [("messages", [shown(m, meta) for m, meta in graph.stream(
        {"messages": [{"role": "user", "content": "hi"}]}, one, stream_mode="messages")])]
    two = {"configurable": {"thread_id": "chat-2"}}
    mixed = graph.stream({"messages": [{"role": "user", "content": "yo"}]}, two,
                         stream_mode=["updates", "messages"])
    seen.append(("mixed", [mode if mode == "updates" else shown(*chunk)
                           for mode, chunk in mixed]))

    async def streamed():
        model.i = 0
        three = {"configurable": {"thread_id": "chat-3"}}
        return [shown(m, meta) async for m, meta in graph.astream(
            {"messages": [{"role": "user", "content": "hey"}]}, three, stream_mode="messages")]

    seen.append(("astream", asyncio.run(streamed())))
    return seen
