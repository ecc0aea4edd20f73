"""The agent loop of LangGraph's tool-calling tutorials, with its prebuilt pieces: a model node,
`ToolNode(tools)` and `tools_condition` routing between them. Tools are plain functions: one
reads the state (`InjectedState`), one asks a human (`interrupt()`), one fails; and the model
makes mistakes: an unknown tool and an argument of the wrong type. Several calls in one
message run as one node and answer in the calls' order."""

from typing import Annotated

from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import InjectedState, ToolNode, tools_condition
from langgraph.types import Command, interrupt


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


def count_messages(note: str, state: Annotated[dict, InjectedState]) -> dict:
    """Count the conversation so far (the state is injected, not given by the model)."""
    return {"note": note, "messages": len(state["messages"])}


def ask_human(question: str) -> str:
    """Ask a person."""
    return f"the human said {interrupt({'question': question})!r}"


def flaky(x: int) -> int:
    """Always fails."""
    raise RuntimeError(f"the service is down for {x}")


SCRIPT = {
    "sum": [{"name": "add", "args": {"a": 2, "b": 40}, "id": "c1"}],
    "several": [
        {"name": "shout", "args": {"text": "hi"}, "id": "c2"},
        {"name": "add", "args": {"a": "3", "b": 4}, "id": "c3"},
        {"name": "count_messages", "args": {"note": "n"}, "id": "c4"},
    ],
    "mistakes": [
        {"name": "nope", "args": {}, "id": "c5"},
        {"name": "add", "args": {"a": "three", "b": 4}, "id": "c6"},
    ],
    "ask": [{"name": "ask_human", "args": {"question": "ok?"}, "id": "c7"}],
    "fail": [{"name": "flaky", "args": {"x": 1}, "id": "c8"}],
}


def model(state: MessagesState):
    last = state["messages"][-1]
    if last.type == "human" and last.content in SCRIPT:
        calls = SCRIPT[last.content]
        return {"messages": [{"role": "assistant", "content": "", "tool_calls": calls}]}
    if last.type == "tool":
        results = [m.content for m in state["messages"] if m.type == "tool"]
        return {"messages": [{"role": "assistant", "content": f"done: {results[-1]}"}]}
    return {"messages": [{"role": "assistant", "content": f"no tools for {last.content}"}]}


def build(checkpointer, **tool_node_options):
    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node(ToolNode([add, shout, count_messages, ask_human, flaky], **tool_node_options))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=checkpointer)


def tool_messages(messages):
    return [
        (m.type, m.name, m.tool_call_id, m.content, m.status) for m in messages if m.type == "tool"
    ]


def main(checkpointer):
    graph = build(checkpointer)
    seen = []
    for n, text in enumerate(["hello", "sum", "several", "mistakes"]):
        config = {"configurable": {"thread_id": f"t{n}"}}
        result = graph.invoke({"messages": [{"role": "user", "content": text}]}, config)
        seen.append((text, result["messages"][-1].content))
        seen.append((f"{text} tool messages", tool_messages(result["messages"])))
        seen.append((f"{text} history", list(graph.get_state_history(config))))

    # a tool that asks a human: the tools node pauses, and the answer reaches the tool
    config = {"configurable": {"thread_id": "ask"}}
    paused = graph.invoke({"messages": [{"role": "user", "content": "ask"}]}, config)
    seen.append(("ask paused", [i.value for i in paused["__interrupt__"]]))
    seen.append(("ask next", graph.get_state(config).next))
    done = graph.invoke(Command(resume="yes"), config)
    seen.append(("ask done", done["messages"][-1].content))

    # a tool error is raised by default, reported to the model with handle_tool_errors=True
    try:
        graph.invoke({"messages": [{"role": "user", "content": "fail"}]},
                     {"configurable": {"thread_id": "fail"}})
    except RuntimeError as error:
        seen.append(("fail raised", str(error)))
    forgiving = build(checkpointer, handle_tool_errors=True)
    reported = forgiving.invoke({"messages": [{"role": "user", "content": "fail"}]},
                                {"configurable": {"thread_id": "fail-reported"}})
    seen.append(("fail reported", tool_messages(reported["messages"])))
    custom = build(checkpointer, handle_tool_errors="try another way")
    reported = custom.invoke({"messages": [{"role": "user", "content": "fail"}]},
                             {"configurable": {"thread_id": "fail-custom"}})
    seen.append(("fail custom", tool_messages(reported["messages"])))

    # the router on its own, given a state or a list of messages
    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "d1", "type": "tool_call"}
    seen.append(("tools by name", sorted(ToolNode([add, shout]).tools_by_name)))
    seen.append(("condition", [
        tools_condition({"messages": [{"role": "assistant", "content": "x"}]}),
        tools_condition([{"role": "assistant", "content": "", "tool_calls": [call]}]),
    ]))
    try:
        tools_condition({"messages": []})
    except ValueError as error:
        seen.append(("condition without messages", type(error).__name__))
    return seen
