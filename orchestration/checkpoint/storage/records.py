"""The records savers exchange with the storage core: a checkpoint's row, a stored field
version (`Blob`), a pending write, and what a put writes (`EncodedPut`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from typing import Any

FULL = "full"
APPEND = "append"
# A small immutable value kept decoded in the checkpoint's own row (`Blob.value`), packed
# with the rest of the row in one call: no bytes of its own, so nothing refers into it.
VALUE = "value"


Pair = tuple[str, str]  # (field, version)

# The JSON scalar types: what a saver keeps decoded in a row (`VALUE`), in the JSON-safe copy
# of `metadata.extra`, and what a filter may compare in SQL (`filters`).
SCALARS = (str, int, float, bool, type(None))

# A checkpoint's row as a read decodes it, a plain tuple (a listing builds hundreds):
# (checkpoint_id, parent_id, step, source, next, versions, internal or None,
#  metadata writes as stored, extra, ts). `versions` and the containers are fresh.
ReadRow = tuple[
    str, str | None, int, str, tuple[str, ...], dict[str, str], dict[str, Any] | None,
    list[Any], dict[str, Any], datetime,
]


# The records below are internal to savers and built on every hot path: plain slotted
# dataclasses, since a frozen dataclass's __init__ costs about twice as much. Treat them as
# immutable all the same.


@dataclass(slots=True)
class Blob:
    """One stored version of one field. `data` is the whole packed value for `full`, or for
    `append` a 4-byte item count followed by the packed items appended to `base`; for
    `value` it is empty and `value` holds the (immutable) value itself."""

    field: str
    version: str
    kind: str
    base: str | None
    data: bytes
    value: Any = None


@dataclass(slots=True)
class CheckpointRecord:
    """The small per-checkpoint row. `meta` is the serialized metadata (writes, extra, ts);
    `extra_json` is the JSON-safe part of `metadata.extra`, kept for filtering in SQL."""

    thread_id: str
    checkpoint_id: str
    parent_id: str | None
    step: int
    source: str
    next: tuple[str, ...]
    versions: dict[str, str]
    internal: bytes
    meta: bytes
    extra_json: dict[str, Any]
    ts: datetime
    # A saver that decoded its row in one call hands the parts over here, fresh for this
    # read: (internal, metadata writes as stored, extra, ts). `internal`/`meta` are then unused.
    parts: tuple[Any, Any, Any, datetime] | None = None


@dataclass(slots=True)
class EncodedPut:
    """What a put writes and the full packed values of the fields it stored (`values`, for
    the cache once the transaction commits).

    `inline` holds the new field versions small enough to live in the checkpoint's own row
    (a version is the id of the checkpoint that created it, so that row is where a reader
    looks first); `blobs` holds the others, for a separate table. A saver that keeps no
    values in its checkpoint rows passes `inline_max=0` and gets every version in `blobs`.
    """

    record: CheckpointRecord
    blobs: list[Blob]
    values: dict[str, bytes]
    inline: list[Blob] = dataclass_field(default_factory=list)
    # With `pack=False`: (internal or None, metadata writes, extra) for the saver to pack
    # with the rest of its row (see `explain_unpackable`).
    parts: tuple[Any, list[Any], dict[str, Any]] | None = None


@dataclass(slots=True)
class WriteRecord:
    task_id: str
    idx: int
    channel: str
    data: bytes


def record_pairs(records: Iterable[CheckpointRecord]) -> list[Pair]:
    return [pair for r in records for pair in r.versions.items()]
