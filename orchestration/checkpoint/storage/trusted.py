"""Trusted construction of the port's frozen, slotted dataclasses from what a read decoded.

The slots are set directly, skipping the frozen `__init__` (one `object.__setattr__` per
field) and `CheckpointConfig`'s validation, which is for callers' input, not for ids read
back from storage. The objects are the same as the constructors build, equal and immutable.

A constructor that bypasses `__init__` must set every field: `check_fields` runs at import
time, so a field added to one of these classes fails the import (naming what to update)
instead of leaving the field unset on every object read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

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

# The slot setters, in the order of the field tuples above (also used inline by
# `read._Reader.build`, the listing's hot loop).
_new = object.__new__
_set_thread_id, _set_config_id, _set_config_ns = (
    CheckpointConfig.__dict__[n].__set__ for n in _CONFIG_FIELDS
)
CHECKPOINT_SLOTS = tuple(Checkpoint.__dict__[name].__set__ for name in _CHECKPOINT_FIELDS)
METADATA_SLOTS = tuple(CheckpointMetadata.__dict__[name].__set__ for name in _METADATA_FIELDS)
TUPLE_SLOTS = tuple(CheckpointTuple.__dict__[name].__set__ for name in _TUPLE_FIELDS)


def trusted_config(thread_id: str, checkpoint_id: str) -> CheckpointConfig:
    config = _new(CheckpointConfig)
    _set_thread_id(config, thread_id)
    _set_config_id(config, checkpoint_id)
    _set_config_ns(config, "")  # savers re-home a subgraph's tuples (`namespaces.rehome`)
    return config


def trusted_checkpoint(
    id: str, ts: datetime, values: dict[str, Any], versions: dict[str, str],
    next: tuple[str, ...], internal: Mapping[str, Any],
) -> Checkpoint:
    checkpoint = _new(Checkpoint)
    set_id, set_ts, set_values, set_versions, set_next, set_internal = CHECKPOINT_SLOTS
    set_id(checkpoint, id)
    set_ts(checkpoint, ts)
    set_values(checkpoint, values)
    set_versions(checkpoint, versions)
    set_next(checkpoint, next)
    set_internal(checkpoint, internal)
    return checkpoint


def trusted_metadata(
    source: str, step: int, writes: Mapping[str, Any], extra: Mapping[str, Any]
) -> CheckpointMetadata:
    metadata = _new(CheckpointMetadata)
    set_source, set_step, set_writes, set_extra = METADATA_SLOTS
    set_source(metadata, source)
    set_step(metadata, step)
    set_writes(metadata, writes)
    set_extra(metadata, extra)
    return metadata


def trusted_tuple(
    config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
    parent_config: CheckpointConfig | None, pending_writes: tuple[PendingWrite, ...],
) -> CheckpointTuple:
    tup = _new(CheckpointTuple)
    set_config, set_checkpoint, set_metadata, set_parent, set_pending = TUPLE_SLOTS
    set_config(tup, config)
    set_checkpoint(tup, checkpoint)
    set_metadata(tup, metadata)
    set_parent(tup, parent_config)
    set_pending(tup, pending_writes)
    return tup
