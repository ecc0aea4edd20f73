"""Trusted construction of the port's frozen, slotted dataclasses from what a read decoded.

A read builds hundreds of these objects, and a frozen dataclass's `__init__` sets each field
through `object.__setattr__` (and `CheckpointConfig`'s validates its input, which is for
callers, not for ids read back from storage). Here each class has a *builder*: a plain class
with the same slots, whose `__init__` stores the fields with ordinary (fast) slot stores and
then makes the object an instance of the frozen class (`__class__` assignment, which Python
allows between classes of the same layout). The objects are the ones the constructors build:
the same type, equal and immutable. It costs about a third less than setting each slot
through its descriptor.

A loop that builds hundreds (a history listing) uses a *shell* instead: the same slots and no
`__init__`, so `ConfigShell()` is a C-level call; the loop stores every field and assigns
`__class__` itself, which is what the builder's `__init__` does, without the interpreter frame
a Python `__init__` costs (about half of the object's price). Such a loop must set every
field, in declaration order, as a builder does; the history tests compare what it builds with
what the constructors build.

A builder must set every field, in declaration order: `check_fields` runs at import time, so
a field added to one of these classes fails the import (naming what to update) instead of
leaving the field unset on every object read back; `check_builder` then builds one object
and compares it with what the constructor builds (a layout that differs fails there too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any, cast

from orchestration.checkpoint.base import (
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
)


def check_fields(cls: type, filled: tuple[str, ...], builder: str) -> None:
    """Raise TypeError unless `filled` is exactly `cls`'s fields, in declaration order."""
    declared = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    if declared != filled:
        raise TypeError(
            f"{cls.__name__}'s fields are {declared}, but {builder} sets {filled}: update "
            f"its field tuple and the function that fills them so every field is set"
        )


_CONFIG_FIELDS = ("thread_id", "checkpoint_id", "checkpoint_ns")
_CHECKPOINT_FIELDS = ("id", "ts", "values", "versions", "next", "internal")
_METADATA_FIELDS = ("source", "step", "writes", "extra")
_TUPLE_FIELDS = ("config", "checkpoint", "metadata", "parent_config", "pending_writes")
_HERE = "orchestration.checkpoint.storage.trusted"
check_fields(CheckpointConfig, _CONFIG_FIELDS, f"{_HERE}.trusted_config")
check_fields(Checkpoint, _CHECKPOINT_FIELDS, f"{_HERE}.trusted_checkpoint")
check_fields(CheckpointMetadata, _METADATA_FIELDS, f"{_HERE}.trusted_metadata")
check_fields(CheckpointTuple, _TUPLE_FIELDS, f"{_HERE}.trusted_tuple")


class ConfigShell:
    """A `CheckpointConfig` being built by a loop (see the module docstring)."""

    __slots__ = _CONFIG_FIELDS


class MetadataShell:
    """A `CheckpointMetadata` being built by a loop (see the module docstring)."""

    __slots__ = _METADATA_FIELDS


class _ConfigBuilder:
    __slots__ = _CONFIG_FIELDS

    def __init__(self, thread_id: str, checkpoint_id: str) -> None:
        self.thread_id = thread_id
        self.checkpoint_id = checkpoint_id
        self.checkpoint_ns = ""  # savers re-home a subgraph's tuples (`namespaces.rehome`)
        self.__class__ = CheckpointConfig  # type: ignore[assignment]


class _CheckpointBuilder:
    __slots__ = _CHECKPOINT_FIELDS

    def __init__(
        self, id: str, ts: datetime, values: dict[str, Any], versions: dict[str, str],
        next: tuple[str, ...], internal: Mapping[str, Any],
    ) -> None:
        self.id = id
        self.ts = ts
        self.values = values
        self.versions = versions
        self.next = next
        self.internal = internal
        self.__class__ = Checkpoint  # type: ignore[assignment]


class _MetadataBuilder:
    __slots__ = _METADATA_FIELDS

    def __init__(
        self, source: str, step: int, writes: Mapping[str, Any], extra: Mapping[str, Any]
    ) -> None:
        self.source = source
        self.step = step
        self.writes = writes
        self.extra = extra
        self.__class__ = CheckpointMetadata  # type: ignore[assignment]


class _TupleBuilder:
    __slots__ = _TUPLE_FIELDS

    def __init__(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
        parent_config: CheckpointConfig | None, pending_writes: tuple[PendingWrite, ...],
    ) -> None:
        self.config = config
        self.checkpoint = checkpoint
        self.metadata = metadata
        self.parent_config = parent_config
        self.pending_writes = pending_writes
        self.__class__ = CheckpointTuple  # type: ignore[assignment]


# The builders, typed as what they return.
trusted_config = cast(Callable[[str, str], CheckpointConfig], _ConfigBuilder)
trusted_checkpoint = cast(
    Callable[
        [str, datetime, dict[str, Any], dict[str, str], tuple[str, ...], Mapping[str, Any]],
        Checkpoint,
    ],
    _CheckpointBuilder,
)
trusted_metadata = cast(
    Callable[[str, int, Mapping[str, Any], Mapping[str, Any]], CheckpointMetadata],
    _MetadataBuilder,
)
trusted_tuple = cast(
    Callable[
        [CheckpointConfig, Checkpoint, CheckpointMetadata, CheckpointConfig | None,
         tuple[PendingWrite, ...]],
        CheckpointTuple,
    ],
    _TupleBuilder,
)


def check_builder(built: Any, expected: Any) -> None:
    """Raise TypeError unless a builder made exactly what the constructor makes."""
    if type(built) is not type(expected) or built != expected:
        raise TypeError(
            f"{_HERE}: the builder of {type(expected).__name__} made {built!r}, not "
            f"{expected!r}; update the builder with the class"
        )


def check_builders() -> None:
    """Build one object of each class and compare it with the constructor's (import time)."""
    ts = datetime(2025, 1, 1)
    config = CheckpointConfig("t", "1")
    checkpoint = Checkpoint("1", ts, {"a": 1}, {"a": "1"}, ("n",), {"k": 1})
    metadata = CheckpointMetadata("loop", 1, {"n": {"a": 1}}, {"user": "ann"})
    check_builder(trusted_config("t", "1"), config)
    check_builder(trusted_checkpoint("1", ts, {"a": 1}, {"a": "1"}, ("n",), {"k": 1}), checkpoint)
    check_builder(trusted_metadata("loop", 1, {"n": {"a": 1}}, {"user": "ann"}), metadata)
    check_builder(
        trusted_tuple(config, checkpoint, metadata, None, ()),
        CheckpointTuple(config, checkpoint, metadata, None, ()),
    )


check_builders()
