"""Tools that return `Command` through `ToolNode`, the usual way a tool sets state or hands
off: a LangChain `@tool` with `InjectedToolCallId` (LangChain passes a `Command` through
only because it is a `ToolOutputMixin`) and a plain function. Its `update` and `goto` reach
the graph, and the tool message it carries gets the tool's name, as ToolNode gives it."""

from typing import Annotated

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command


class State(MessagesState):
    user: str
    audited: bool


@tool
def set_user(name: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
    """Set the user name."""
    return Command(update={
        "user": name,
        "messages": [ToolMessage(f"user set to {name}", tool_call_id=tool_call_id)],
    })


def escalate(reason: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
    """Hand the case to the auditor."""
    return Command(
        update={"messages": [ToolMessage(f"escalated: {reason}", tool_call_id=tool_call_id)]},
        goto="audit",
    )


def audit(state: State):
    return {"audited": True}


def build():
    builder = StateGraph(State)
    builder.add_node("tools", ToolNode([set_user, escalate]))
    builder.add_node("audit", audit)
    builder.add_edge(START, "tools")
    return builder.compile()


def asking(*calls):
    return {"messages": [AIMessage("", tool_calls=list(calls))], "user": "", "audited": False}


def tool_messages(result):
    return [(m.name, m.tool_call_id, m.content) for m in result["messages"] if m.type == "tool"]


def main(checkpointer):
    graph = build()
    seen = []
    named = graph.invoke(asking({"name": "set_user", "args": {"name": "ann"}, "id": "1"}))
    seen.append(("langchain tool: user", named["user"]))
    seen.append(("langchain tool: messages", tool_messages(named)))
    handed = graph.invoke(asking({"name": "escalate", "args": {"reason": "fraud"}, "id": "2"}))
    seen.append(("plain tool: goto ran", handed["audited"]))
    seen.append(("plain tool: messages", tool_messages(handed)))
    both = graph.invoke(asking({"name": "set_user", "args": {"name": "bo"}, "id": "3"},
                               {"name": "escalate", "args": {"reason": "x"}, "id": "4"}))
    seen.append(("both: values", (both["user"], both["audited"])))
    seen.append(("both: messages", tool_messages(both)))
    return seen
