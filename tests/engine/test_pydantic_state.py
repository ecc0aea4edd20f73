"""Pydantic state schemas are validated at the boundary: input, node updates, update_state."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, field_validator

from orchestration import Command, InvalidUpdateError, StateGraph, interrupt
from orchestration.checkpoint import CheckpointConfig
from orchestration.reducers import topic


class Order(BaseModel):
    quantity: int = 0
    items: Annotated[list[str], topic] = []
    email: str = ""

    @field_validator("email")
    @classmethod
    def _has_at(cls, value: str) -> str:
        if value and "@" not in value:
            raise ValueError("an email address needs an @")
        return value.lower()


def one_node(fn, saver=None):  # noqa: ANN001, ANN201 - a tiny graph factory
    graph = StateGraph(Order).add_node("n", fn).set_entry_point("n").set_finish_point("n")
    return graph.compile(checkpointer=saver)


def test_input_of_the_wrong_type_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidUpdateError, match=r"'quantity'.*valid integer"):
        one_node(lambda s: None).invoke({"quantity": "many"})


def test_input_is_coerced_like_pydantic_does() -> None:
    assert one_node(lambda s: None).invoke({"quantity": "3"}).quantity == 3


def test_field_validators_run_on_input() -> None:
    with pytest.raises(InvalidUpdateError, match="needs an @"):
        one_node(lambda s: None).invoke({"email": "nobody"})


def test_nodes_receive_validated_values() -> None:
    seen: list[str] = []
    one_node(lambda s: seen.append(s.email)).invoke({"email": "Ann@Example.org"})
    assert seen == ["ann@example.org"]


def test_node_update_of_the_wrong_type_is_refused_naming_node_and_field(saver) -> None:
    compiled = one_node(lambda s: {"quantity": "lots"}, saver)
    with pytest.raises(InvalidUpdateError) as caught:
        compiled.invoke(None, CheckpointConfig("bad-update"))
    message = str(caught.value)
    assert "'quantity'" in message and "['n']" in message and "step 1" in message


def test_refused_node_update_is_not_committed_and_the_node_reruns_on_resume(saver) -> None:
    answers = ["lots", 5]
    compiled = one_node(lambda s: {"quantity": answers.pop(0)}, saver)
    config = CheckpointConfig("rerun")
    with pytest.raises(InvalidUpdateError):
        compiled.invoke(None, config)
    assert saver.get_tuple(config).metadata.source == "input"
    assert compiled.invoke(None, config).quantity == 5


def test_reducer_fields_are_validated_after_reducing() -> None:
    with pytest.raises(InvalidUpdateError, match=r"'items\.1'"):
        one_node(lambda s: {"items": [["not", "a", "string"]]}).invoke({"items": ["ok"]})


def test_update_state_validates_values(saver) -> None:
    compiled = one_node(lambda s: None, saver)
    config = CheckpointConfig("edit")
    compiled.invoke(None, config)
    with pytest.raises(InvalidUpdateError, match="'quantity'"):
        compiled.update_state(config, {"quantity": "x"}, as_node="n")
    assert len(saver.list(config)) == 2


def test_resume_update_is_validated_before_anything_is_written(saver) -> None:
    compiled = one_node(lambda s: {"email": interrupt("email?")}, saver)
    config = CheckpointConfig("resume-edit")
    compiled.invoke(None, config)
    with pytest.raises(InvalidUpdateError, match="'quantity'"):
        compiled.invoke(Command(resume="a@b.c", update={"quantity": "x"}), config)
    assert compiled.invoke(Command(resume="A@B.C"), config).email == "a@b.c"


def test_checkpoints_store_the_coerced_values(saver) -> None:
    compiled = one_node(lambda s: None, saver)
    config = CheckpointConfig("coerced")
    compiled.invoke({"quantity": "4"}, config)
    assert saver.get_tuple(config).checkpoint.values["quantity"] == 4


def test_the_default_instance_resumes_an_unfinished_thread(saver) -> None:
    graph = StateGraph(Order).add_node("a", lambda s: {"items": ["a"]})
    graph.add_node("b", lambda s: {"items": ["b"]}).set_entry_point("a").add_edge("a", "b")
    compiled = graph.set_finish_point("b").compile(checkpointer=saver, interrupt_before=["b"])
    config = CheckpointConfig("default-resumes")
    compiled.invoke(None, config)
    assert compiled.invoke(Order(), config).items == ["a", "b"]
