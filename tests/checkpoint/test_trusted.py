"""Reads build the port's frozen dataclasses without their constructors; the import-time
guard makes a field added to one of them fail loudly instead of being left unset."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from orchestration.checkpoint import Checkpoint, CheckpointConfig, CheckpointMetadata
from orchestration.checkpoint.base import CheckpointTuple
from orchestration.checkpoint.storage import trusted


def _with_extra_field(cls: type) -> type:
    """`cls` as it would be with one more field (a new attribute added to the dataclass)."""
    fields = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(
        cls.__name__, [*fields, ("reviewed", bool, dataclasses.field(default=False))],
        frozen=True, slots=True,
    )


@pytest.mark.parametrize(
    ("cls", "filled"),
    [
        (Checkpoint, trusted._CHECKPOINT_FIELDS),
        (CheckpointMetadata, trusted._METADATA_FIELDS),
        (CheckpointTuple, trusted._TUPLE_FIELDS),
        (CheckpointConfig, trusted._CONFIG_FIELDS),
    ],
)
def test_guard_refuses_a_class_with_a_field_the_fast_constructor_does_not_set(
    cls: type, filled: tuple[str, ...]
) -> None:
    trusted.check_fields(cls, filled, "the builder")  # today's classes pass
    with pytest.raises(TypeError, match=r"reviewed.*update its field tuple"):
        trusted.check_fields(_with_extra_field(cls), filled, "the builder")


def test_guard_refuses_fields_set_in_another_order() -> None:
    with pytest.raises(TypeError, match="Checkpoint's fields are"):
        trusted.check_fields(Checkpoint, ("ts", "id", "values", "versions", "next", "internal"),
                             "the builder")


def test_trusted_objects_equal_what_the_constructors_build() -> None:
    ts = datetime(2025, 1, 1, tzinfo=UTC)
    built = trusted.trusted_tuple(
        trusted.trusted_config("t", "2"),
        trusted.trusted_checkpoint("2", ts, {"a": 1}, {"a": "2"}, ("n",), {"k": 1}),
        trusted.trusted_metadata("loop", 1, {"n": {"a": 1}}, {"user": "ann"}),
        trusted.trusted_config("t", "1"),
        (),
    )
    assert built == CheckpointTuple(
        CheckpointConfig("t", "2"),
        Checkpoint("2", ts, {"a": 1}, {"a": "2"}, ("n",), {"k": 1}),
        CheckpointMetadata("loop", 1, {"n": {"a": 1}}, {"user": "ann"}),
        CheckpointConfig("t", "1"),
        (),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.checkpoint.id = "3"  # type: ignore[misc]


def test_builder_guard_refuses_an_object_unlike_the_constructors() -> None:
    config = CheckpointConfig("t", "1")
    trusted.check_builder(trusted.trusted_config("t", "1"), config)
    with pytest.raises(TypeError, match="the builder of CheckpointConfig made"):
        trusted.check_builder(trusted.trusted_config("t", "2"), config)
    with pytest.raises(TypeError, match="update the builder with the class"):
        trusted.check_builder(("t", "1", ""), config)


def test_built_objects_are_instances_of_the_frozen_classes_themselves() -> None:
    ts = datetime(2025, 1, 1, tzinfo=UTC)
    built = trusted.trusted_tuple(
        trusted.trusted_config("t", "2"),
        trusted.trusted_checkpoint("2", ts, {"a": 1}, {"a": "2"}, (), {}),
        trusted.trusted_metadata("loop", 1, {}, {}),
        None,
        (),
    )
    assert type(built) is CheckpointTuple
    assert type(built.config) is CheckpointConfig
    assert type(built.checkpoint) is Checkpoint
    assert type(built.metadata) is CheckpointMetadata
    assert hash(built.config) == hash(CheckpointConfig("t", "2"))
    assert dataclasses.replace(built.checkpoint, id="3").id == "3"
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.metadata.step = 2  # type: ignore[misc]
