"""API.md "Additions (third round)": the LangGraph-shaped surface, checked on Stepwise alone
(tests/compat compares whole programs with LangGraph itself)."""

from __future__ import annotations

import operator
import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import pytest

from orchestration import (
    END,
    START,
    CheckpointNotFound,
    Command,
    GraphRecursionError,
    GraphValidationError,
    InvalidUpdateError,
    Send,
    SerializationError,
    StateGraph,
    get_config,
    interrupt,
)
from orchestration.checkpoint import (
    CheckpointConfig,
    InMemoryCheckpointSaver,
    InMemorySaver,
    MemorySaver,
    SqliteSaver,
)
from orchestration.reducers import REMOVE_ALL_MESSAGES, RemoveMessage, add_messages


class S(TypedDict):
    value: int
    log: Annotated[list, operator.add]


def step(state: S) -> dict:
    return {"value": state["value"] + 1, "log": ["step"]}


def linear(checkpointer: Any = None) -> Any:
    graph = StateGraph(S)
    graph.add_node(step)
    graph.add_edge(START, "step")
    return graph.compile(checkpointer=checkpointer)


# -- building -------------------------------------------------------------------------------


def test_add_node_takes_the_name_from_the_function() -> None:
    assert linear().nodes == ("step",)


def test_a_lambda_without_name_is_refused_with_the_fix() -> None:
    graph = StateGraph(S).add_node(lambda s: None).add_edge(START, "x")
    with pytest.raises(GraphValidationError, match=r"add_node\('name', fn\)"):
        graph.compile()


def test_a_deferred_node_waits_until_nothing_else_is_pending() -> None:
    def node(name: str) -> Any:
        def run(state: S) -> dict:
            return {"log": [name]}

        run.__name__ = name
        return run

    graph = StateGraph(S)
    for name in ("a", "b", "b2", "c"):
        graph.add_node(node(name))
    graph.add_node(node("d"), defer=True)
    for source, target in (("a", "b"), ("a", "c"), ("b", "b2"), ("b2", "d"), ("c", "d")):
        graph.add_edge(source, target)
    graph.add_edge(START, "a").add_edge("d", END)
    assert graph.compile().invoke({"value": 0})["log"] == ["a", "b", "c", "b2", "d"]


# -- configs --------------------------------------------------------------------------------


def test_thread_ids_may_be_uuids_or_ints_stored_as_strings() -> None:
    tid = uuid.uuid4()
    assert CheckpointConfig(tid).thread_id == str(tid)
    assert CheckpointConfig(7).thread_id == "7"
    with pytest.raises(ValueError, match="UUID or an int"):
        CheckpointConfig(True)  # type: ignore[arg-type]


def test_dict_configs_run_and_returned_configs_read_as_dicts() -> None:
    saver = InMemorySaver()
    graph = linear(saver)
    config = {"configurable": {"thread_id": uuid.UUID(int=5)}}
    assert graph.invoke({"value": 1}, config)["value"] == 2
    snapshot = graph.get_state(config)
    assert snapshot.config["configurable"]["thread_id"] == str(uuid.UUID(int=5))
    written = graph.update_state(config, {"value": 10})
    assert written["configurable"]["checkpoint_id"] == written.checkpoint_id
    assert graph.get_state(written).values["value"] == 10
    assert saver.get_tuple(config).config == written
    assert snapshot.metadata["source"] == "loop" and snapshot.metadata.get("writes")
    assert [s.metadata["step"] for s in graph.get_state_history(config, filter={"source": "input"})]


def test_a_saver_bound_graph_called_without_a_thread_says_how_to_pass_one() -> None:
    with pytest.raises(ValueError, match='"configurable": {"thread_id"'):
        linear(InMemorySaver()).invoke({"value": 1}, {"configurable": {"user_id": "u"}})


def test_a_node_with_a_config_parameter_gets_the_runs_config() -> None:
    seen: list[Any] = []

    def node(state: S, config: dict) -> None:
        seen.append((config["configurable"]["user_id"], get_config()["configurable"]["thread_id"]))

    graph = StateGraph(S).add_node(node).add_edge(START, "node").compile(
        checkpointer=MemorySaver()
    )
    graph.invoke({"value": 1}, {"configurable": {"thread_id": "t", "user_id": "ann"}})
    assert seen == [("ann", "t")]
    with pytest.raises(RuntimeError, match="inside a node"):
        get_config()


def test_savers_names_for_langgraph_users() -> None:
    assert InMemorySaver is InMemoryCheckpointSaver is MemorySaver


# -- running --------------------------------------------------------------------------------


def test_interrupt_without_a_saver_raises_at_once_and_runs_nothing_after() -> None:
    ran: list[str] = []

    def review(state: S) -> dict:
        return {"value": interrupt("ok?")}

    graph = StateGraph(S).add_node(review).add_node("after", lambda s: ran.append("after"))
    graph.add_edge(START, "review").add_edge("review", "after")
    with pytest.raises(RuntimeError, match="no checkpoint saver") as caught:
        graph.compile().invoke({"value": 1})
    assert "checkpointer=InMemorySaver()" in str(caught.value)
    assert ran == []


def test_invoke_returns_the_interrupts_of_a_dict_state() -> None:
    def review(state: S) -> dict:
        return {"value": interrupt({"q": state["value"]})}

    graph = StateGraph(S).add_node(review).add_edge(START, "review")
    compiled = graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "x"}}
    paused = compiled.invoke({"value": 1}, config)
    assert [i.value for i in paused["__interrupt__"]] == [{"q": 1}]
    assert compiled.invoke(Command(resume=5), config) == {"value": 5, "log": []}


def test_per_call_breakpoints_and_unknown_names() -> None:
    compiled = linear(InMemorySaver())
    config = {"configurable": {"thread_id": "b"}}
    assert compiled.invoke({"value": 1}, config, interrupt_before=["step"])["value"] == 1
    assert compiled.get_state(config).next == ("step",)
    assert compiled.invoke(None, config)["value"] == 2
    with pytest.raises(ValueError, match="'ghost'"):
        compiled.invoke({"value": 1}, config, interrupt_after=["ghost"])


def test_updates_stream_one_chunk_per_send_task() -> None:
    graph = StateGraph(S).add_node("plan", lambda s: None)
    graph.add_node("work", lambda arg: {"log": [arg]})
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", lambda s: [Send("work", n) for n in range(3)], ["work"])
    chunks = list(graph.compile().stream({"value": 0}))
    assert chunks[0] == {"plan": None}
    assert sorted(c["work"]["log"][0] for c in chunks[1:]) == [0, 1, 2]


def test_tasks_and_checkpoints_modes() -> None:
    compiled = linear(InMemorySaver())
    config = {"configurable": {"thread_id": "m"}}
    tasks = list(compiled.stream({"value": 1}, config, stream_mode="tasks"))
    assert [t["name"] for t in tasks] == ["step", "step"]
    assert tasks[0]["input"] == {"value": 1, "log": []}
    assert tasks[1]["result"] == {"value": 2, "log": ["step"]} and tasks[1]["error"] is None
    config = {"configurable": {"thread_id": "m2"}}
    checkpoints = list(compiled.stream({"value": 1}, config, stream_mode="checkpoints"))
    assert [c["metadata"]["source"] for c in checkpoints] == ["input", "loop"]
    assert checkpoints[-1]["config"]["configurable"]["checkpoint_id"] == (
        compiled.get_state(config).config.checkpoint_id
    )


# -- messages in the user's terms -----------------------------------------------------------


def test_recursion_without_a_saver_does_not_advise_resuming() -> None:
    graph = StateGraph(S).add_node(step).add_edge(START, "step").add_edge("step", "step")
    with pytest.raises(GraphRecursionError) as caught:
        graph.compile().invoke({"value": 0}, {"recursion_limit": 3})
    assert "invoke(None" not in str(caught.value) and "Nothing was saved" in str(caught.value)


def test_an_unknown_input_key_is_reported_as_input() -> None:
    with pytest.raises(InvalidUpdateError, match="the input has key 'vlaue'") as caught:
        linear().invoke({"vlaue": 1})
    assert "node 'input'" not in str(caught.value)


def test_a_dataclass_node_may_return_the_state_and_other_objects_are_named_once() -> None:
    @dataclass
    class D:
        x: int = 0

    graph = StateGraph(D).add_node("a", lambda s: D(x=s.x + 1)).add_edge(START, "a")
    assert graph.compile().invoke(D()) == D(x=1)
    graph = StateGraph(D).add_node("a", lambda s: [s.x]).add_edge(START, "a")
    with pytest.raises(InvalidUpdateError) as caught:
        graph.compile().invoke(D())
    assert str(caught.value).count("list") == 1


def test_an_interrupt_payload_that_cannot_be_stored_is_named_as_such() -> None:
    graph = StateGraph(S).add_node("ask", lambda s: interrupt(object())).add_edge(START, "ask")
    with pytest.raises(SerializationError) as caught:
        graph.compile(checkpointer=InMemorySaver()).invoke(
            {"value": 1}, {"configurable": {"thread_id": "p"}}
        )
    message = str(caught.value)
    assert "called interrupt()" in message and "pending write" not in message


def test_resuming_a_thread_that_never_ran_says_to_start_it() -> None:
    with pytest.raises(CheckpointNotFound, match="has never run"):
        linear(InMemorySaver()).invoke(Command(resume=1), {"configurable": {"thread_id": "new"}})


# -- SqliteSaver as in LangGraph ------------------------------------------------------------


def test_sqlite_saver_on_a_given_connection_shared_by_threads(tmp_path: Any) -> None:
    conn = sqlite3.connect(tmp_path / "given.db", check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    saver.setup()
    compiled = linear(saver)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            compiled.invoke({"value": n}, {"configurable": {"thread_id": f"t{n}"}})
        except BaseException as error:  # noqa: BLE001 - reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert compiled.get_state({"configurable": {"thread_id": "t5"}}).values["value"] == 6
    saver.close()
    assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 16  # still open


def test_sqlite_saver_from_conn_string(tmp_path: Any) -> None:
    path = tmp_path / "cm.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        linear(saver).invoke({"value": 1}, {"configurable": {"thread_id": "a"}})
    assert os.stat(path).st_mode & 0o777 == 0o600
    with SqliteSaver.from_conn_string(":memory:") as saver:
        assert linear(saver).invoke({"value": 1}, {"configurable": {"thread_id": "a"}})["value"]
    with pytest.raises(RuntimeError, match="closed"):
        saver.get_tuple(CheckpointConfig("a"))


# -- add_messages ---------------------------------------------------------------------------


class FakeMessage:
    def __init__(self, content: str, id: str | None = None) -> None:
        self.content, self.id, self.type = content, id, "human"


def test_add_messages_appends_replaces_and_removes() -> None:
    history = add_messages([], [{"role": "user", "content": "hi"}, "plain text"])
    assert all(m["id"] for m in history) and history[1]["role"] == "user"
    first = history[0]["id"]
    history = add_messages(history, {"role": "user", "content": "edited", "id": first})
    assert [m["content"] for m in history] == ["edited", "plain text"]
    history = add_messages(history, [RemoveMessage(id=first)])
    assert [m["content"] for m in history] == ["plain text"]
    obj = FakeMessage("object")
    history = add_messages(history, [obj])
    assert history[-1] is obj and obj.id
    assert add_messages(history, [RemoveMessage(REMOVE_ALL_MESSAGES), {"role": "ai", "content": "x",
                                                                     "id": "k"}]) == [
        {"role": "ai", "content": "x", "id": "k"}
    ]
    with pytest.raises(ValueError, match="names no message"):
        add_messages(history, [RemoveMessage(id="ghost")])


def test_remove_message_travels_through_a_saver(tmp_path: Any) -> None:
    class Chat(TypedDict):
        messages: Annotated[list, add_messages]

    graph = StateGraph(Chat).add_node("say", lambda s: {"messages": [{"role": "ai",
                                                                      "content": "hello"}]})
    compiled = graph.add_edge(START, "say").compile(checkpointer=SqliteSaver(tmp_path / "m.db"))
    config = {"configurable": {"thread_id": "chat"}}
    said = compiled.invoke({"messages": [{"role": "user", "content": "hi"}]}, config)
    messages = said["messages"]
    compiled.update_state(config, {"messages": [RemoveMessage(id=messages[0]["id"])]})
    assert [m["content"] for m in compiled.get_state(config).values["messages"]] == ["hello"]
