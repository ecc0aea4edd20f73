"""Writing: a checkpoint and its metadata become a record and blobs (only the fields it
changed; a grown list as its new items), pending writes become write records."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from orchestration.checkpoint import serde
from orchestration.checkpoint.base import Checkpoint, CheckpointMetadata
from orchestration.checkpoint.storage.cache import ValueCache
from orchestration.checkpoint.storage.packing import COUNT, EMPTY_MAP, appended, split_array
from orchestration.checkpoint.storage.records import (
    APPEND,
    FULL,
    SCALARS,
    VALUE,
    Blob,
    CheckpointRecord,
    EncodedPut,
    WriteRecord,
)
from orchestration.errors import SerializationError

# Writes smaller than this stay inline in the metadata; a reference would not save space.
_MIN_REF_BYTES = 32
# Values whose packed form is certainly shorter than _MIN_REF_BYTES: not worth packing twice.
_SMALL_SCALARS = (int, float, bool, type(None))
# Strings shorter than this pack to fewer than _MIN_REF_BYTES bytes (a char is at most 4
# bytes, the header 1).
_SHORT_STR = _MIN_REF_BYTES // 4 - 1
_NO_VERSIONS: dict[str, str] = {}


def encode_checkpoint(
    thread_id: str,
    parent_id: str | None,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    cache: ValueCache,
    *,
    inline_max: int = 0,
    pack: bool = True,
) -> EncodedPut:
    """Serialize everything a put needs, before anything is written (errors name the field).

    A new version of `inline_max` bytes or less, created by this checkpoint, goes to
    `inline` (at most `4 * inline_max` bytes in all, so the row stays small); the rest to
    `blobs`. Savers must insert blobs "or ignore": a blob for a version that already exists
    is the same value (versions are immutable), which happens only when the parent's versions
    were not in the cache and an unchanged field had to be serialized again.

    With `pack=False` the saver packs the row itself, in one call: small scalars go to
    `inline` as `VALUE` blobs (not serialized here), `record.internal`/`record.meta` stay
    empty and `parts` holds what they would contain. If that packing fails, the saver calls
    `explain_unpackable`, which raises the error naming the bad value.
    """
    cid = checkpoint.id
    given = checkpoint.versions
    values = checkpoint.values
    # The version of every field; a field the engine gave no version is versioned by this
    # checkpoint (it is stored with it).
    versions = {name: str(given.get(name, cid)) for name in values}
    parent_versions = cache.versions(thread_id, parent_id) or _NO_VERSIONS
    blobs: list[Blob] = []
    inline: list[Blob] = []
    room = 4 * inline_max
    embed = inline_max and not pack
    packed_now: dict[str, tuple[bytes, int]] = {}  # field -> (full bytes, start of new items)
    for name, value in values.items():
        version = versions[name]
        if version == cid:
            if embed:
                size = _embedded_size(value)
                if size and size <= room:
                    inline.append(Blob(name, version, VALUE, None, b"", value))
                    room -= size
                    continue
        else:
            base = parent_versions.get(name)
            if version == base:
                continue  # unchanged since the parent, which stored it
        data = _dump_field(value, name)
        if type(value) is list:
            blob, new_from = _blob_for(
                thread_id, name, version, data, parent_versions.get(name), cache
            )
        else:  # packs to anything but an array (strict types): nothing to append to
            blob, new_from = Blob(name, version, FULL, None, data), 0
        size = len(blob.data)
        # Only a version this checkpoint created may live in its row: readers find a version
        # by the id of the checkpoint that created it.
        if version == cid and size <= inline_max and size <= room:
            inline.append(blob)
            room -= size
        else:
            blobs.append(blob)
        packed_now[name] = (data, new_from)
    writes = encode_metadata_writes(metadata.writes, packed_now)
    extra = dict(metadata.extra)
    internal_bytes = b""
    meta = b""
    parts = None
    if not pack:
        parts = (dict(checkpoint.internal) if checkpoint.internal else None, writes, extra)
    else:
        internal_bytes = (
            EMPTY_MAP
            if not checkpoint.internal
            else serde.dumps(dict(checkpoint.internal), where="checkpoint.internal")
        )
        try:
            # [writes, extra, ts] packed as [writes, extra] plus the packed ts: the same
            # bytes, without the packer calling back into Python for the datetime.
            head = serde.dumps([writes, extra], where="checkpoint metadata")
            meta = b"\x93" + head[1:] + serde.dumps(checkpoint.ts, where="checkpoint.ts")
        except SerializationError:
            _explain_metadata(writes, extra)  # raises with the path of the bad value
            raise
    record = CheckpointRecord(
        thread_id, cid, parent_id, int(metadata.step), str(metadata.source),
        tuple(checkpoint.next), versions, internal_bytes, meta,
        _json_safe(extra) if extra else {}, checkpoint.ts,
    )
    # Worth caching: lists (a put on top compares with them to store appends only) and
    # values kept outside the row (a read of this checkpoint then needs no extra query).
    cached = {
        name: packed for name, (packed, new_from) in packed_now.items()
        if new_from or len(packed) > inline_max
    }
    return EncodedPut(record, blobs, cached, inline, parts)


def _dump_field(value: Any, name: str) -> bytes:
    """A state field's value packed. The error's text (an f-string with a repr) is built
    only when packing fails: built eagerly, it cost about as much as packing a small value."""
    try:
        return serde.dumps(value)
    except SerializationError:
        return serde.dumps(value, where=f"state field {name!r}", field=name)  # raises


def _embedded_size(value: Any) -> int:
    """An upper bound of the packed size of an immutable scalar, or 0 if `value` is not one
    (it is then serialized on its own)."""
    kind = type(value)
    if kind is str:
        return 4 * len(value) + 5 if len(value) <= 40 else 0
    if kind is int:
        return 9 if -(2**63) <= value < 2**64 else 0
    if kind is bool or kind is float or value is None:
        return 9
    return 0


def explain_unpackable(encoded: EncodedPut, checkpoint: Checkpoint) -> None:
    """A saver's one-call packing of an `encode_checkpoint(pack=False)` result failed: pack
    its parts one by one, raising the SerializationError that names the bad value."""
    for blob in encoded.inline:
        if blob.kind == VALUE:
            serde.dumps(blob.value, where=f"state field {blob.field!r}", field=blob.field)
    internal, writes, extra = encoded.parts or (None, [], {})
    if internal is not None:
        serde.dumps(internal, where="checkpoint.internal")
    serde.dumps(checkpoint.ts, where="checkpoint.ts")
    _explain_metadata(writes, extra)
    raise SerializationError(
        f"cannot serialize checkpoint {checkpoint.id!r}: packing its row failed although "
        "each part packs on its own"
    )


def _blob_for(
    thread_id: str, name: str, version: str, data: bytes, base: str | None, cache: ValueCache
) -> tuple[Blob, int]:
    shape = split_array(data)
    if shape is None:  # not a list: nothing to append to
        return Blob(name, version, FULL, None, data), 0
    previous = cache.value(thread_id, name, base) if base and base != version else None
    added = appended(previous, data) if previous is not None else None
    if added is None:
        return Blob(name, version, FULL, None, data), shape[1]
    count, items = added
    return Blob(name, version, APPEND, base, COUNT.pack(count) + items), len(data) - len(items)


def remember_put(cache: ValueCache, put: EncodedPut, *, keep_inline: bool = False) -> None:
    """After a successful commit: cache the new versions and the values worth caching. With
    `keep_inline`, also the full values stored in the checkpoint's row (for a saver that does
    not read them with the row)."""
    record = put.record
    values = put.values
    # `values` is empty when a put stored only small scalars (a chain's every superstep).
    cached = [(b.field, b.version, values[b.field]) for b in (*put.blobs, *put.inline)
              if b.field in values] if values else []
    if keep_inline:
        cached += [(b.field, b.version, b.data) for b in put.inline
                   if b.kind == FULL and b.field not in values]
    cache.remember(record.thread_id, record.checkpoint_id, record.versions, cached)


def encode_metadata_writes(
    writes: Mapping[str, Any], packed_now: Mapping[str, tuple[bytes, int]]
) -> list[Any]:
    """`metadata.writes` as [[node, 0, update]] or [[node, 1, [[key, kind, a, b, c]...]]].

    A node's update usually repeats what this checkpoint just stored in a field (the items it
    appended to a topic, a new value). Such an update is kept as a byte range of the field's
    packed value instead of a second copy: kind 1 = `value[a:b]` is the packed update, kind 2 =
    the update is a list of `c` items packed at `value[a:b]`. Kind 0 is an inline value.
    A node whose update refers to nothing (small values: a counter, a short string) is
    stored as it is, `[node, 0, update]`: the same update when read, in fewer bytes, with no
    entries to build and pack.
    """
    out: list[Any] = []
    for node, update in writes.items():
        if type(update) is not dict or not packed_now or packed_now.keys().isdisjoint(update):
            out.append([node, 0, update])  # nothing to refer to: the update as it is
            continue
        refs = _references(node, update, packed_now)
        if refs is None:
            out.append([node, 0, update])
            continue
        out.append([node, 1, [
            [key, *refs[key]] if key in refs else [key, 0, value, None, None]
            for key, value in update.items()
        ]])
    return out


def _references(
    node: str, update: dict[Any, Any], packed_now: Mapping[str, tuple[bytes, int]]
) -> dict[Any, list[Any]] | None:
    """key -> the reference of each value of `update` found in a field packed now; None if
    there is none."""
    refs = None
    for key, value in update.items():
        kind = type(value)
        if kind in _SMALL_SCALARS or (kind is str and len(value) < _SHORT_STR):
            continue  # packs to fewer than _MIN_REF_BYTES bytes: never worth a reference
        stored = packed_now.get(key) if isinstance(key, str) else None
        ref = _reference(value, stored, node, key) if stored else None
        if ref:
            if refs is None:
                refs = {}
            refs[key] = ref
    return refs


def _explain_metadata(writes: list[Any], extra: dict[str, Any]) -> None:
    """Packing the metadata failed: pack its parts one by one so the error names the value."""
    for node, mode, payload in writes:
        where = f"metadata.writes[{node!r}]"
        if mode == 0:
            serde.dumps(payload, where=where)
        else:
            for key, kind, value, _, _ in payload:
                if kind == 0:
                    serde.dumps(value, where=f"{where}[{key!r}]")
    serde.dumps(extra, where="metadata.extra")


def _reference(
    value: Any, stored: tuple[bytes, int], node: str, key: str
) -> list[Any] | None:
    try:
        packed = serde.dumps(value)
    except SerializationError:  # the error names the value: its text built only now
        serde.dumps(value, where=f"metadata.writes[{node!r}][{key!r}]")
        raise
    if len(packed) < _MIN_REF_BYTES:
        return None
    full, new_from = stored
    shape = split_array(packed) if type(value) is list else None
    if shape is not None:
        body = packed[shape[1] :]
        at = full.find(body, new_from)
        if at >= 0:
            return [2, at, at + len(body), shape[0]]
    at = full.find(packed, new_from)
    if at >= 0:
        return [1, at, at + len(packed), None]
    return None


def _json_safe(extra: Mapping[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in extra.items():
        if not isinstance(key, str):
            continue
        if type(value) in SCALARS:
            if type(value) is float and not math.isfinite(value):  # NaN, inf are not JSON
                continue
            safe[key] = value
            continue
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        safe[key] = value
    return safe


def encode_writes(writes: Sequence[tuple[str, Any]], task_id: str) -> list[WriteRecord]:
    return [
        WriteRecord(
            task_id,
            idx,
            channel,
            serde.dumps(
                value,
                where=f"pending write to channel {channel!r} of task {task_id!r}",
                # The engine's own channels (`__resume__`, ...) are not state fields.
                field=None if channel.startswith("__") else channel,
            ),
        )
        for idx, (channel, value) in enumerate(writes)
    ]
