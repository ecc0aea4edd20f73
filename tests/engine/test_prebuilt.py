"""`ToolNode` and `tools_condition` (orchestration.prebuilt) beyond what the LangGraph
comparison (`tests/compat/programs/prebuilt_tools.py`) shows: calls side by side, injection,
async tools, a tool's Command and interrupt, error handlers, LangChain tools."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Annotated, Any

import pytest

from orchestration import END, START, Command, MessagesState, StateGraph, interrupt
from orchestration.checkpoint import InMemorySaver, SqliteSaver
from orchestration.messages import Message
from orchestration.prebuilt import InjectedState, InjectedStore, ToolNode, tools_condition
from orchestration.store import InMemoryStore


def calls_of(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "role": "assistant", "content": "",
        "tool_calls": [{"name": n, "args": a, "id": f"c{i}"} for i, (n, a) in enumerate(calls)],
    }


def agent(tools: list[Any], **options: Any) -> StateGraph:
    """A model node that asks for the calls its input message carries, then stops."""

    def model(state: MessagesState) -> dict[str, Any]:
        last = state["messages"][-1]
        if last.type == "tool":
            return {"messages": [{"role": "assistant", "content": "done"}]}
        return {"messages": [calls_of(*last["calls"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node(ToolNode(tools, **options))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    return builder


def ask(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "go", "calls": list(calls)}]}


def tool_results(state: dict[str, Any]) -> list[tuple[str, Any, str]]:
    return [(m.name, m.content, m.status) for m in state["messages"] if m.type == "tool"]


def test_several_calls_run_side_by_side_and_answer_in_call_order() -> None:
    both = threading.Barrier(2, timeout=10)  # each call waits for the other: never one by one

    def slow(x: int) -> int:
        both.wait()
        return x * 10

    def quick(x: int) -> int:
        both.wait()
        return x

    graph = agent([slow, quick]).compile()
    result = graph.invoke(ask(("slow", {"x": 1}), ("quick", {"x": 2})))
    assert tool_results(result) == [("slow", "10", "success"), ("quick", "2", "success")]
    assert [m.tool_call_id for m in result["messages"] if m.type == "tool"] == ["c0", "c1"]


def test_state_store_and_call_id_are_injected_and_hidden_from_the_model() -> None:
    store = InMemoryStore()
    store.put(("notes",), "n1", {"text": "remember me"})

    def recall(
        key: str,
        messages: Annotated[list[Any], InjectedState("messages")],
        state: Annotated[dict[str, Any], InjectedState],
        store: Annotated[Any, InjectedStore()],
    ) -> str:
        note = store.get(("notes",), key).value["text"]
        return f"{note} after {len(messages)}/{len(state['messages'])}"

    graph = agent([recall]).compile(store=store)
    result = graph.invoke(ask(("recall", {"key": "n1"})))
    assert tool_results(result) == [("recall", "remember me after 2/2", "success")]


def test_an_async_tool_runs_under_invoke_and_ainvoke() -> None:
    async def shout(text: str) -> str:
        await asyncio.sleep(0)
        return text.upper()

    graph = agent([shout]).compile()
    result = graph.invoke(ask(("shout", {"text": "hi"})))
    assert tool_results(result) == [("shout", "HI", "success")]
    result = asyncio.run(graph.ainvoke(ask(("shout", {"text": "yo"}))))
    assert tool_results(result) == [("shout", "YO", "success")]


def test_a_tools_command_updates_state_and_routes() -> None:
    class State(MessagesState):
        user: str

    def log_in(name: str) -> Command[Any]:
        reply = {"role": "tool", "content": f"hello {name}", "tool_call_id": "c0"}
        return Command(update={"user": name, "messages": [reply]}, goto="greet")

    def model(state: State) -> dict[str, Any]:
        return {"messages": [calls_of(("log_in", {"name": "ada"}))]}

    builder = StateGraph(State)
    builder.add_node("model", model)
    builder.add_node(ToolNode([log_in]))
    builder.add_node(
        "greet", lambda s: {"messages": [{"role": "assistant", "content": f"hi {s['user']}"}]}
    )
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("greet", END)
    result = builder.compile().invoke({"messages": [], "user": ""})
    assert result["user"] == "ada"
    assert [m.content for m in result["messages"]][-2:] == ["hello ada", "hi ada"]


def test_an_interrupt_in_one_of_two_tools_pauses_and_resumes_on_sqlite(tmp_path: Path) -> None:
    ran: list[str] = []

    def confirm(what: str) -> str:
        ran.append("confirm")
        return f"{what}: {interrupt({'confirm': what})}"

    def lookup(what: str) -> str:
        ran.append("lookup")
        return f"found {what}"

    with SqliteSaver(tmp_path / "tools.sqlite3") as saver:
        graph = agent([confirm, lookup]).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "t"}}
        paused = graph.invoke(ask(("lookup", {"what": "a"}), ("confirm", {"what": "pay"})), config)
        assert [i.value for i in paused["__interrupt__"]] == [{"confirm": "pay"}]
        assert graph.get_state(config).next == ("tools",)
        done = graph.invoke(Command(resume="yes"), config)
    assert tool_results(done) == [
        ("lookup", "found a", "success"), ("confirm", "pay: yes", "success")
    ]
    # the node re-runs on resume, as LangGraph's does: both tools are called again
    assert sorted(ran) == ["confirm", "confirm", "lookup", "lookup"]


def test_error_handlers_report_what_they_name_and_raise_the_rest() -> None:
    def bad(kind: str) -> str:
        raise (ValueError if kind == "value" else KeyError)(kind)

    def only_values(error: ValueError) -> str:
        return f"bad value {error}"

    graph = agent([bad], handle_tool_errors=only_values).compile()
    result = graph.invoke(ask(("bad", {"kind": "value"})))
    assert tool_results(result) == [("bad", "bad value value", "error")]
    with pytest.raises(KeyError):
        graph.invoke(ask(("bad", {"kind": "key"})))

    by_type = agent([bad], handle_tool_errors=(KeyError,)).compile()
    result = by_type.invoke(ask(("bad", {"kind": "key"})))
    assert tool_results(result)[0][1] == "Error: KeyError('key')\n Please fix your mistakes."
    strict = agent([bad], handle_tool_errors=False).compile()
    with pytest.raises(ValueError, match="value"):
        strict.invoke(ask(("bad", {"kind": "value"})))


def test_a_missing_argument_is_told_to_the_model_with_the_argument_named() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    result = agent([add]).compile().invoke(ask(("add", {"a": 1})))
    [(name, content, status)] = tool_results(result)
    assert status == "error" and "b: Missing required argument" in content
    assert content.startswith("Error invoking tool 'add' with kwargs {'a': 1}")


def test_a_langchain_tool_is_called_as_langgraph_calls_it() -> None:
    tools = pytest.importorskip("langchain_core.tools")

    @tools.tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    result = agent([multiply]).compile().invoke(ask(("multiply", {"a": 6, "b": "7"})))
    assert tool_results(result) == [("multiply", "42", "success")]
    assert [m for m in result["messages"] if m.type == "tool"][0].tool_call_id == "c0"


def test_unusable_tools_and_inputs_are_refused_with_what_to_do() -> None:
    with pytest.raises(TypeError, match="named function"):
        ToolNode([lambda x: x])
    with pytest.raises(TypeError, match="named function"):
        ToolNode([42])
    node = ToolNode([])
    with pytest.raises(ValueError, match="No message found in input.*messages_key"):
        node.invoke({"messages": []})
    with pytest.raises(ValueError, match="No AIMessage"):
        node.invoke({"messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(ValueError, match="No messages found"):
        tools_condition({"messages": []})


def test_a_custom_messages_key_is_read_and_written() -> None:
    def echo(text: str) -> str:
        return text

    node = ToolNode([echo], messages_key="chat")
    call = {"name": "echo", "args": {"text": "x"}, "id": "k"}
    message = {"role": "assistant", "content": "", "tool_calls": [call]}
    out = node.invoke({"chat": [Message(message)]})
    assert list(out) == ["chat"] and out["chat"][0].content == "x"
    assert tools_condition({"chat": [Message(message)]}, messages_key="chat") == "tools"


def test_an_async_tool_can_ask_under_ainvoke() -> None:
    async def confirm(what: str) -> str:
        return f"{what}: {interrupt({'confirm': what})}"

    saver = InMemorySaver()
    graph = agent([confirm]).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "a"}}
    paused = asyncio.run(graph.ainvoke(ask(("confirm", {"what": "pay"})), config))
    assert [i.value for i in paused["__interrupt__"]] == [{"confirm": "pay"}]
    done = asyncio.run(graph.ainvoke(Command(resume="ok"), config))
    assert tool_results(done) == [("confirm", "pay: ok", "success")]


def test_an_async_tool_asks_when_invoke_is_called_from_async_code() -> None:
    """A notebook calls `invoke` with its event loop running: the tool's coroutine runs on a
    thread of its own, in the task's context, so its interrupt() still pauses the node."""

    async def confirm(what: str) -> str:
        await asyncio.sleep(0)
        return f"{what}: {interrupt({'confirm': what})}"

    graph = agent([confirm]).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "n"}}

    async def notebook() -> tuple[Any, Any]:
        paused = graph.invoke(ask(("confirm", {"what": "pay"})), config)
        return paused, graph.invoke(Command(resume="ok"), config)

    paused, done = asyncio.run(notebook())
    assert [i.value for i in paused["__interrupt__"]] == [{"confirm": "pay"}]
    assert tool_results(done) == [("confirm", "pay: ok", "success")]
