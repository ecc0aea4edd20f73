"""State schemas: reducers from Annotated metadata, defaults, inputs, serializer registration."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, TypedDict

import pytest
from pydantic import BaseModel

from orchestration import InvalidUpdateError, StateGraph
from orchestration.checkpoint import CheckpointConfig, serde
from orchestration.reducers import last_value, merge, topic
from orchestration.state import Schema


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Line:
    sku: str
    colour: Colour = Colour.RED


class Address(BaseModel):
    city: str = ""


@dataclass
class Order:
    lines: Annotated[list[Line], topic] = field(default_factory=list)
    shipping: Address | None = None
    note: str = ""


def test_reducers_come_from_annotated_metadata_and_default_to_last_value() -> None:
    schema = Schema(Order)
    assert schema.reducers == {"lines": topic, "shipping": last_value, "note": last_value}


def test_pydantic_field_reducer_is_read_from_field_metadata() -> None:
    class Model(BaseModel):
        tags: Annotated[dict[str, int], merge] = {}

    assert Schema(Model).reducers["tags"] is merge


def test_typeddict_reducer_fields_start_from_their_empty_type() -> None:
    class Plain(TypedDict):
        items: Annotated[list[int], topic]
        name: str

    schema = Schema(Plain)
    assert schema.initial_values() == {"items": []}


def test_state_graph_registers_schema_and_nested_types_with_the_serializer() -> None:
    StateGraph(Order)
    for kind in (Order, Line, Colour, Address):
        assert serde.is_registered(kind), kind


def test_nested_registered_values_survive_a_checkpoint_round_trip(saver) -> None:
    graph = StateGraph(Order).add_node(
        "add", lambda s: {"lines": [Line("x")], "shipping": Address(city="Oslo")}
    )
    compiled = graph.set_entry_point("add").set_finish_point("add").compile(checkpointer=saver)
    compiled.invoke(None, CheckpointConfig("order"))
    values = compiled.get_state(CheckpointConfig("order")).values
    assert values == Order(lines=[Line("x")], shipping=Address(city="Oslo"))


def test_schema_default_instance_is_an_empty_input() -> None:
    assert Schema(Order).input_updates(Order()) == {}


def test_schema_instance_input_sets_the_fields_that_differ_from_defaults() -> None:
    assert Schema(Order).input_updates(Order(note="rush")) == {"note": "rush"}


def test_unknown_input_key_is_refused_naming_the_key() -> None:
    with pytest.raises(InvalidUpdateError, match="'nope'"):
        Schema(Order).input_updates({"nope": 1})


def test_required_field_without_a_value_is_reported_clearly() -> None:
    @dataclass
    class Needs:
        customer: str

    graph = StateGraph(Needs).add_node("a", lambda s: None).set_entry_point("a")
    with pytest.raises(InvalidUpdateError, match="customer"):
        graph.set_finish_point("a").compile().invoke(None)


def test_field_names_starting_with_dunder_are_refused() -> None:
    bad = TypedDict("Bad", {"__secret": int})

    with pytest.raises(TypeError, match="reserved"):
        Schema(bad)
