"""Dict messages kept by `add_messages` read as LangChain's message objects (`m.content`,
`m.type`) and stay dicts: equal to what was given, stored as such, loaded back as messages."""

from __future__ import annotations

import json

import pytest

from orchestration import START, MessagesState, Overwrite, StateGraph
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig, serde
from orchestration.messages import Message, add_messages


def test_a_dict_message_reads_as_an_object_and_stays_a_dict() -> None:
    [message] = add_messages([], [{"role": "user", "content": "hi", "id": "1"}])
    assert type(message) is Message
    assert message == {"role": "user", "content": "hi", "id": "1"}
    assert (message.content, message.type, message.id) == ("hi", "human", "1")
    assert (message.tool_calls, message.name, message.additional_kwargs) == ([], None, {})
    assert json.loads(json.dumps(message)) == {"role": "user", "content": "hi", "id": "1"}
    message.content = "hello"
    assert message["content"] == "hello"
    with pytest.raises(AttributeError, match="no 'colour'.*keys"):
        _ = message.colour


def test_roles_read_as_langchain_types() -> None:
    roles = ["user", "assistant", "system", "tool"]
    merged = add_messages([], [{"role": r, "content": r, "id": r} for r in roles])
    assert [m.type for m in merged] == ["human", "ai", "system", "tool"]


def test_a_message_is_stored_and_loaded_back_as_a_message() -> None:
    message = Message({"role": "assistant", "content": "ok", "id": "a"})
    loaded = serde.loads(serde.dumps([message, {"role": "user"}]))
    assert type(loaded[0]) is Message and loaded[0] == message
    assert type(loaded[1]) is dict  # a plain dict stays one


def test_history_read_from_the_saver_reads_as_objects(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    def echo(state: MessagesState) -> dict:
        return {"messages": [{"role": "assistant", "content": state["messages"][-1].content}]}

    graph = StateGraph(MessagesState).add_node("echo", echo).add_edge(START, "echo")
    compiled = graph.compile(checkpointer=saver)
    compiled.invoke({"messages": [{"role": "user", "content": "one"}]}, config)
    compiled.invoke({"messages": [{"role": "user", "content": "two"}]}, config)
    history = compiled.get_state(config).values["messages"]
    assert [(m.type, m.content) for m in history] == [
        ("human", "one"), ("ai", "one"), ("human", "two"), ("ai", "two"),
    ]
    # A fork that overwrites the list with plain dicts (as the review app's form sends them):
    # the next update through add_messages reads them as messages again.
    compiled.update_state(config, {"messages": Overwrite([{"role": "user", "content": "x"}])})
    compiled.update_state(config, {"messages": [{"role": "user", "content": "y"}]})
    assert [m.content for m in compiled.get_state(config).values["messages"]] == ["x", "y"]
