"""Short-term memory (how-to "Add memory": delete messages): trimming a thread's history with
RemoveMessage in a node and with update_state."""

from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.message import RemoveMessage
from scripted import ScriptedModel

model = ScriptedModel()


def call_model(state: MessagesState):
    return {"messages": [model.invoke(state["messages"])]}


def delete_messages(state: MessagesState):
    messages = state["messages"]
    if len(messages) > 4:
        return {"messages": [RemoveMessage(id=m.id if not isinstance(m, dict) else m["id"])
                             for m in messages[:2]]}


def main(checkpointer):
    builder = StateGraph(MessagesState)
    builder.add_sequence([call_model, delete_messages])
    builder.add_edge(START, "call_model")
    app = builder.compile(checkpointer=checkpointer)
    seen = []
    config = {"configurable": {"thread_id": "memory"}}
    for text in ("hi, I'm bob", "what's my name?", "and my age?"):
        result = app.invoke({"messages": [{"role": "user", "content": text}]}, config)
        seen.append((text, result["messages"]))
    first = app.get_state(config).values["messages"][0]
    first_id = first.id if not isinstance(first, dict) else first["id"]
    app.update_state(config, {"messages": [RemoveMessage(id=first_id)]})
    seen.append(("after update_state", app.get_state(config).values["messages"]))
    replaced = {"role": "user", "content": "I am alice", "id": "fixed-id"}
    app.update_state(config, {"messages": [replaced]})
    app.update_state(config, {"messages": [{**replaced, "content": "I am carol"}]})
    seen.append(("replaced by id", app.get_state(config).values["messages"][-1]))
    return seen
