"""The storage core every saver shares: how a checkpoint becomes rows and blobs, and back.

A checkpoint is one small record (ids, step, source, next, field versions, serialized
`internal` and metadata) plus one blob per (field, version) for the fields this checkpoint
changed. A list field that only grew since the parent's version (a `topic`) is stored as
the appended items alone (`kind="append"`, `base` = the parent's version), so storage grows
with what changed, not with the size of the state. Reading walks append chains back to a
full blob. A saver may keep small new versions in the checkpoint's own row (`inline_max`).

Appends are detected on serialized bytes: msgpack encodes a list as a header followed by its
items' encodings, so "new extends old" is a byte-prefix check, and the cache of recently
written values holds immutable bytes that nodes cannot mutate behind our back.

Everything here is pure (no I/O); savers supply storage and a `fetch` callback for blobs.
"""

from __future__ import annotations

import enum
import json
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from orchestration.checkpoint import serde
from orchestration.checkpoint.base import (
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
)
from orchestration.errors import SerializationError

FULL = "full"
APPEND = "append"
# A small immutable value kept decoded in the checkpoint's own row (`Blob.value`), packed
# with the rest of the row in one call: no bytes of its own, so nothing refers into it.
VALUE = "value"

# Writes smaller than this stay inline in the metadata; a reference would not save space.
_MIN_REF_BYTES = 32
_COUNT = struct.Struct(">I")

Pair = tuple[str, str]  # (field, version)

_NO_VERSIONS: dict[str, str] = {}
_NO_BLOBS: Mapping[Pair, Blob] = {}
_EMPTY_MAP = b"\x80"  # a packed empty dict: most checkpoints have no engine bookkeeping
# Values whose packed form is certainly shorter than _MIN_REF_BYTES: not worth packing twice.
_SMALL_SCALARS = (int, float, bool, type(None))


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


class ValueCache:
    """Recently written or read field values (packed bytes) and checkpoint versions.

    Entries are immutable facts (a version's value never changes once stored), so the cache
    stays correct when other processes write to the same database; only deleting a thread
    must evict (`forget_thread`).
    """

    def __init__(self, max_bytes: int = 64 << 20, max_checkpoints: int = 4096) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._size = 0
        self._max_bytes = max_bytes
        self._versions: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
        self._max_checkpoints = max_checkpoints

    def value(self, thread_id: str, field: str, version: str) -> bytes | None:
        key = (thread_id, field, version)
        with self._lock:
            data = self._values.get(key)
            if data is not None:
                self._values.move_to_end(key)
            return data

    def put_value(self, thread_id: str, field: str, version: str, data: bytes) -> None:
        if len(data) > self._max_bytes // 4:
            return
        key = (thread_id, field, version)
        with self._lock:
            old = self._values.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._values[key] = data
            self._size += len(data)
            while self._size > self._max_bytes:
                _, dropped = self._values.popitem(last=False)
                self._size -= len(dropped)

    def versions(self, thread_id: str, checkpoint_id: str | None) -> dict[str, str] | None:
        if checkpoint_id is None:
            return None
        with self._lock:
            return self._versions.get((thread_id, checkpoint_id))

    def put_versions(self, thread_id: str, checkpoint_id: str, versions: dict[str, str]) -> None:
        with self._lock:
            self._versions[(thread_id, checkpoint_id)] = versions
            self._versions.move_to_end((thread_id, checkpoint_id))
            if len(self._versions) > self._max_checkpoints:
                self._versions.popitem(last=False)

    def remember(
        self,
        thread_id: str,
        checkpoint_id: str,
        versions: dict[str, str],
        values: Sequence[tuple[str, str, bytes]],
    ) -> None:
        """What a put stored, under one lock acquisition: its versions and `values`
        ((field, version, packed bytes) of the versions worth caching)."""
        limit = self._max_bytes // 4
        with self._lock:
            stored = self._values
            for field, version, data in values:
                if len(data) > limit:
                    continue
                old = stored.pop((thread_id, field, version), None)
                if old is not None:
                    self._size -= len(old)
                stored[(thread_id, field, version)] = data
                self._size += len(data)
            while self._size > self._max_bytes:
                _, dropped = stored.popitem(last=False)
                self._size -= len(dropped)
            self._versions[(thread_id, checkpoint_id)] = versions
            self._versions.move_to_end((thread_id, checkpoint_id))
            if len(self._versions) > self._max_checkpoints:
                self._versions.popitem(last=False)

    def put_many_versions(self, items: Iterable[tuple[str, str, dict[str, str]]]) -> None:
        """(thread id, checkpoint id, versions) of many checkpoints read at once."""
        with self._lock:
            known = self._versions
            for thread_id, checkpoint_id, versions in items:
                known[(thread_id, checkpoint_id)] = versions
                known.move_to_end((thread_id, checkpoint_id))
            while len(known) > self._max_checkpoints:
                known.popitem(last=False)

    def forget_thread(self, thread_id: str) -> None:
        with self._lock:
            for key in [k for k in self._values if k[0] == thread_id]:
                self._size -= len(self._values.pop(key))
            for key in [k for k in self._versions if k[0] == thread_id]:
                del self._versions[key]


# --- msgpack arrays as bytes --------------------------------------------------------------


def _split_array(data: bytes) -> tuple[int, int] | None:
    """(item count, header length) if `data` is a packed list, else None."""
    if not data:
        return None
    first = data[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F, 1
    if first == 0xDC:
        return int.from_bytes(data[1:3]), 3
    if first == 0xDD:
        return int.from_bytes(data[1:5]), 5
    return None


def _array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2)
    return b"\xdd" + count.to_bytes(4)


def _appended(old: bytes, new: bytes) -> tuple[int, bytes] | None:
    """If `new` is the list `old` with items appended: (number added, their packed bytes)."""
    old_shape, new_shape = _split_array(old), _split_array(new)
    if old_shape is None or new_shape is None:
        return None
    (old_count, old_header), (new_count, new_header) = old_shape, new_shape
    old_body_len = len(old) - old_header
    if new_count <= old_count or len(new) - new_header <= old_body_len:
        return None
    if new[new_header : new_header + old_body_len] != old[old_header:]:
        return None
    return new_count - old_count, new[new_header + old_body_len :]


# --- writing ------------------------------------------------------------------------------


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
        base = parent_versions.get(name)
        data = serde.dumps(value, where=f"state field {name!r}", field=name)
        blob, new_from = _blob_for(thread_id, name, version, data, base, cache)
        size = len(blob.data)
        # Only a version this checkpoint created may live in its row: readers find a version
        # by the id of the checkpoint that created it.
        if version == cid and size <= inline_max and size <= room:
            inline.append(blob)
            room -= size
        else:
            blobs.append(blob)
        packed_now[name] = (data, new_from)
    writes = _encode_metadata_writes(metadata.writes, packed_now)
    extra = dict(metadata.extra)
    internal_bytes = b""
    meta = b""
    parts = None
    if not pack:
        parts = (dict(checkpoint.internal) if checkpoint.internal else None, writes, extra)
    else:
        internal_bytes = (
            _EMPTY_MAP
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
    shape = _split_array(data)
    if shape is None:  # not a list: nothing to append to
        return Blob(name, version, FULL, None, data), 0
    previous = cache.value(thread_id, name, base) if base and base != version else None
    added = _appended(previous, data) if previous is not None else None
    if added is None:
        return Blob(name, version, FULL, None, data), shape[1]
    count, items = added
    return Blob(name, version, APPEND, base, _COUNT.pack(count) + items), len(data) - len(items)


def remember_put(cache: ValueCache, put: EncodedPut) -> None:
    """After a successful commit: cache the new versions and the values worth caching."""
    record = put.record
    values = put.values
    cache.remember(
        record.thread_id, record.checkpoint_id, record.versions,
        [(b.field, b.version, values[b.field]) for b in (*put.blobs, *put.inline)
         if b.field in values],
    )


def _encode_metadata_writes(
    writes: Mapping[str, Any], packed_now: Mapping[str, tuple[bytes, int]]
) -> list[Any]:
    """`metadata.writes` as [[node, 0, update]] or [[node, 1, [[key, kind, a, b, c]...]]].

    A node's update usually repeats what this checkpoint just stored in a field (the items it
    appended to a topic, a new value). Such an update is kept as a byte range of the field's
    packed value instead of a second copy: kind 1 = `value[a:b]` is the packed update, kind 2 =
    the update is a list of `c` items packed at `value[a:b]`. Kind 0 is an inline value.
    """
    out: list[Any] = []
    for node, update in writes.items():
        if type(update) is not dict or not packed_now or packed_now.keys().isdisjoint(update):
            out.append([node, 0, update])  # nothing to refer to: the update as it is
            continue
        entries = []
        for key, value in update.items():
            stored = packed_now.get(key) if isinstance(key, str) else None
            where = f"metadata.writes[{node!r}][{key!r}]"
            ref = _reference(value, stored, where) if stored else None
            entries.append([key, *ref] if ref else [key, 0, value, None, None])
        out.append([node, 1, entries])
    return out


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


def _reference(value: Any, stored: tuple[bytes, int], where: str) -> list[Any] | None:
    kind = type(value)
    if kind in _SMALL_SCALARS or (kind is str and len(value) < _MIN_REF_BYTES // 4 - 1):
        return None  # packs to fewer than _MIN_REF_BYTES bytes (a char is at most 4 bytes)
    packed = serde.dumps(value, where=where)
    if len(packed) < _MIN_REF_BYTES:
        return None
    full, new_from = stored
    shape = _split_array(packed) if type(value) is list else None
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
        if value is None or type(value) in (str, int, bool, float):
            if type(value) is float and value != value:  # NaN is not JSON
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


# --- reading ------------------------------------------------------------------------------

Fetch = Callable[[list[Pair]], Mapping[Pair, Blob]]


def resolve_values(
    thread_id: str, pairs: Iterable[Pair], cache: ValueCache, fetch: Fetch
) -> dict[Pair, bytes]:
    """The full packed bytes of each (field, version). `fetch(missing)` must return the blobs
    of those pairs and of their append chains (it may return more)."""
    found: dict[Pair, bytes] = {}
    missing: list[Pair] = []
    for pair in dict.fromkeys(pairs):
        data = cache.value(thread_id, *pair)
        if data is None:
            missing.append(pair)
        else:
            found[pair] = data
    if missing:
        blobs = fetch(missing)
        for pair in missing:
            found[pair] = _assemble(thread_id, pair, blobs, cache)
    return found


def _assemble(thread_id: str, pair: Pair, blobs: Mapping[Pair, Blob], cache: ValueCache) -> bytes:
    field, version = pair
    chain: list[Blob] = []
    while True:
        base_bytes = cache.value(thread_id, field, version) if chain else None
        if base_bytes is not None:
            break
        blob = blobs.get((field, version))
        if blob is None:
            raise SerializationError(
                f"thread {thread_id!r} has no stored value for field {field!r} at version "
                f"{version!r} (the database is incomplete; was it pruned by hand?)"
            )
        if blob.kind == FULL:
            base_bytes = bytes(blob.data)
            break
        if blob.kind == VALUE:
            base_bytes = serde.dumps(blob.value, where=f"state field {field!r}")
            break
        chain.append(blob)
        version = blob.base or ""
    if not chain:
        return base_bytes
    shape = _split_array(base_bytes)
    if shape is None:
        raise SerializationError(f"field {field!r}: an append version's base is not a list")
    count, header = shape
    parts = [base_bytes[header:]]
    for blob in reversed(chain):
        data = bytes(blob.data)
        count += _COUNT.unpack_from(data)[0]
        parts.append(data[_COUNT.size :])
    full = _array_header(count) + b"".join(parts)
    cache.put_value(thread_id, field, pair[1], full)
    return full


def chain_bases(blobs: Iterable[Blob]) -> list[Pair]:
    """Pairs that append blobs point to (for savers that fetch chains level by level)."""
    return [(b.field, b.base) for b in blobs if b.kind == APPEND and b.base]


def read_tuples(
    records: Sequence[CheckpointRecord],
    cache: ValueCache,
    fetch: Fetch,
    writes: Mapping[str, Sequence[WriteRecord]],
    known: Mapping[Pair, Blob] = _NO_BLOBS,
) -> list[CheckpointTuple]:
    """Rebuild the tuples of `records` (one thread's, oldest first) in one pass.

    `known` holds blobs the saver already has at hand (its rows' inline versions, or all of
    them for the memory saver). `fetch(wanted)` must return the blobs of `wanted` and of
    their append chains not in `known` (it may stop at versions whose value is cached, and
    may return more); it returns `known` itself when it filled that in.

    Each stored (field, version) is decoded once per call, and a version appending to another
    is built from its base's decoded list plus the decoded new items, so listing a thread
    costs its stored size, not its size times its length. Every returned value is still the
    caller's own (see `_Reader.value`).
    """
    if not records:
        return []
    thread_id = records[0].thread_id
    one = len(records) == 1
    # One checkpoint (a resume reading its latest): its cached values are the cheapest source.
    # Many: fetch every version's own blob, so each is decoded once along its chain instead
    # of each cached full value being decoded on its own.
    wanted = [
        pair for pair in dict.fromkeys(record_pairs(records))
        if not (one and cache.value(thread_id, *pair) is not None)
    ]
    blobs: Mapping[Pair, Blob] = known
    if wanted:
        fetched = fetch(wanted)
        blobs = fetched if fetched is known or not known else {**known, **fetched}
    reader = _Reader(thread_id, cache, blobs, cache_first=one)
    tuples = [reader.tuple(r, writes.get(r.checkpoint_id, ())) for r in records]
    # A put on top of the newest checkpoint read (a resume) compares with these full lists
    # to store a grown one as its new items only.
    for pair in records[-1].versions.items():
        node = reader.nodes.get(pair)  # none for a scalar kept in its row
        if node is not None and node.count is not None and cache.value(thread_id, *pair) is None:
            cache.put_value(thread_id, *pair, reader.full(pair))
    remember_read(cache, records)
    return tuples


# Types whose values cannot be changed in place: one decoded object may be handed to several
# checkpoints. (An Enum member is a singleton: decoding it again returns the same object.)
_ATOMIC = frozenset(
    {str, bytes, int, float, bool, type(None), Decimal, datetime, date, time, timedelta, UUID}
)


def _immutable(value: Any) -> bool:
    kind = type(value)
    if kind in _ATOMIC:
        return True
    if kind is tuple or kind is frozenset:
        return all(_immutable(item) for item in value)
    return isinstance(value, enum.Enum)


def _immutable_items(items: list[Any]) -> bool:
    atomic = _ATOMIC
    for item in items:
        if type(item) not in atomic and not _immutable(item):
            return False
    return True


class _Node:
    """One stored (field, version) during a read.

    `shared` says `value` may be handed out to several checkpoints: an immutable value, or a
    list of immutable items (each checkpoint then gets its own list object). Otherwise
    `value` is given to the first checkpoint only and the others decode the full bytes.
    `tail` is the last stored piece of the full packed value (the whole value for a full
    blob, the appended items for an append), starting at byte `tail_at` of it.
    """

    __slots__ = ("base", "count", "body_len", "tail", "tail_at", "full", "value", "shared",
                 "handed")

    def __init__(self, base: _Node | None, tail: bytes, tail_at: int, count: int | None,
                 body_len: int, full: bytes | None, value: Any, shared: bool) -> None:
        self.base = base
        self.tail = tail
        self.tail_at = tail_at
        self.count = count  # the list's length, None if the value is not a list
        self.body_len = body_len  # packed bytes after the list header
        self.full = full
        self.value = value
        self.shared = shared
        self.handed = False


# Trusted construction of the port's frozen, slotted dataclasses from what a read decoded:
# the slots are set directly, skipping the frozen `__init__` (one `object.__setattr__` per
# field) and `CheckpointConfig`'s validation, which is for callers' input, not for ids read
# back from storage. The objects are the same as the constructors build, equal and immutable.
_new = object.__new__
_set_thread_id = CheckpointConfig.__dict__["thread_id"].__set__
_set_config_id = CheckpointConfig.__dict__["checkpoint_id"].__set__
_CHECKPOINT_SLOTS = tuple(
    Checkpoint.__dict__[name].__set__
    for name in ("id", "ts", "values", "versions", "next", "internal")
)
_METADATA_SLOTS = tuple(
    CheckpointMetadata.__dict__[name].__set__ for name in ("source", "step", "writes", "extra")
)
_TUPLE_SLOTS = tuple(
    CheckpointTuple.__dict__[name].__set__
    for name in ("config", "checkpoint", "metadata", "parent_config", "pending_writes")
)


def trusted_config(thread_id: str, checkpoint_id: str) -> CheckpointConfig:
    config = _new(CheckpointConfig)
    _set_thread_id(config, thread_id)
    _set_config_id(config, checkpoint_id)
    return config


def _trusted_checkpoint(
    id: str, ts: datetime, values: dict[str, Any], versions: dict[str, str],
    next: tuple[str, ...], internal: Mapping[str, Any],
) -> Checkpoint:
    checkpoint = _new(Checkpoint)
    set_id, set_ts, set_values, set_versions, set_next, set_internal = _CHECKPOINT_SLOTS
    set_id(checkpoint, id)
    set_ts(checkpoint, ts)
    set_values(checkpoint, values)
    set_versions(checkpoint, versions)
    set_next(checkpoint, next)
    set_internal(checkpoint, internal)
    return checkpoint


def _trusted_metadata(
    source: str, step: int, writes: Mapping[str, Any], extra: Mapping[str, Any]
) -> CheckpointMetadata:
    metadata = _new(CheckpointMetadata)
    set_source, set_step, set_writes, set_extra = _METADATA_SLOTS
    set_source(metadata, source)
    set_step(metadata, step)
    set_writes(metadata, writes)
    set_extra(metadata, extra)
    return metadata


def _trusted_tuple(
    config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
    parent_config: CheckpointConfig | None, pending_writes: tuple[PendingWrite, ...],
) -> CheckpointTuple:
    tup = _new(CheckpointTuple)
    set_config, set_checkpoint, set_metadata, set_parent, set_pending = _TUPLE_SLOTS
    set_config(tup, config)
    set_checkpoint(tup, checkpoint)
    set_metadata(tup, metadata)
    set_parent(tup, parent_config)
    set_pending(tup, pending_writes)
    return tup


class _Reader:
    def __init__(
        self, thread_id: str, cache: ValueCache, blobs: Mapping[Pair, Blob], *, cache_first: bool
    ) -> None:
        self.thread_id = thread_id
        self.cache = cache
        self.blobs = blobs
        self.cache_first = cache_first
        self.nodes: dict[Pair, _Node] = {}
        # Configs are immutable: a checkpoint's config is its child's parent_config.
        self.configs: dict[str, CheckpointConfig] = {}

    def config(self, checkpoint_id: str) -> CheckpointConfig:
        config = self.configs.get(checkpoint_id)
        if config is None:
            config = self.configs[checkpoint_id] = trusted_config(self.thread_id, checkpoint_id)
        return config

    def tuple(self, record: CheckpointRecord, writes: Sequence[WriteRecord]) -> CheckpointTuple:
        """Every call builds fresh containers (callers may mutate what they get)."""
        if record.parts is not None:
            internal, writes_raw, extra, ts = record.parts
            internal = {} if internal is None else internal
        else:
            writes_raw, extra, ts = serde.loads(record.meta)
            internal = {} if record.internal == _EMPTY_MAP else serde.loads(record.internal)
        versions = record.versions
        value = self.value
        checkpoint = _trusted_checkpoint(
            record.checkpoint_id, ts, {name: value((name, v)) for name, v in versions.items()},
            versions.copy(), record.next, internal,
        )
        metadata = _trusted_metadata(
            record.source, record.step,
            self._metadata_writes(writes_raw, versions) if writes_raw else {}, extra,
        )
        parent_id = record.parent_id
        return _trusted_tuple(
            self.config(record.checkpoint_id),
            checkpoint,
            metadata,
            self.config(parent_id) if parent_id else None,
            tuple(
                [PendingWrite(w.task_id, w.channel, serde.loads(w.data)) for w in writes]
            ) if writes else (),
        )

    def value(self, pair: Pair) -> Any:
        """The value of `pair` for one checkpoint, sharing nothing another checkpoint could
        change: immutable values are shared, lists of immutable items are copied (shallow),
        anything else is decoded again from its bytes."""
        nodes = self.nodes
        node = nodes.get(pair)
        if node is None:
            blob = self.blobs.get(pair)
            if blob is not None:
                kind = blob.kind
                if kind == VALUE:
                    return blob.value  # an immutable scalar kept in its row: no node needed
                if kind == APPEND and not self.cache_first:
                    # A listing: the base is usually the version the previous checkpoint read.
                    base = nodes.get((pair[0], blob.base))  # type: ignore[arg-type]
                    if base is not None:
                        node = nodes[pair] = _append_node(pair[0], base, blob)
            if node is None:
                node = self._node(pair)
        if node.shared:
            if node.count is None or not node.handed:
                node.handed = True
                return node.value
            return node.value.copy()
        if not node.handed and node.value is not None:
            node.handed = True
            return node.value
        return serde.loads(self.full(pair))

    def full(self, pair: Pair) -> bytes:
        """The whole packed value of `pair`, joined from its append chain once."""
        node = self._node(pair)
        if node.full is not None:
            return node.full
        if node.base is None:  # a value kept decoded in its row
            node.full = serde.dumps(node.value, where=f"state field {pair[0]!r}")
            return node.full
        parts: list[bytes] = []
        below: _Node | None = node
        while below is not None and below.full is None:
            parts.append(below.tail)
            below = below.base
        if below is None or below.count is None:  # cannot happen: chains end in a full list
            raise SerializationError(f"field {pair[0]!r}: an append version's base is not a list")
        parts.append(below.full[len(below.full) - below.body_len :])
        parts.reverse()
        node.full = _array_header(node.count or 0) + b"".join(parts)
        return node.full

    def _node(self, pair: Pair) -> _Node:
        node = self.nodes.get(pair)
        if node is not None:
            return node
        field, version = pair
        chain: list[Blob] = []
        while True:
            key = (field, version)
            if chain:
                node = self.nodes.get(key)
                if node is not None:
                    break
            data = self.cache.value(self.thread_id, field, version) if self.cache_first else None
            blob = self.blobs.get(key) if data is None else None
            if blob is None and data is None:
                data = self.cache.value(self.thread_id, field, version)
                if data is None:
                    raise SerializationError(
                        f"thread {self.thread_id!r} has no stored value for field {field!r} "
                        f"at version {version!r} (the database is incomplete; was it pruned "
                        "by hand?)"
                    )
            if blob is not None and blob.kind == APPEND:
                chain.append(blob)
                version = blob.base or ""
                continue
            if blob is not None and blob.kind == VALUE:
                node = _Node(None, b"", 0, None, 0, None, blob.value, True)
                self.nodes[key] = node
                break
            node = _full_node(data if blob is None else bytes(blob.data))
            self.nodes[key] = node
            break
        for blob in reversed(chain):
            node = _append_node(field, node, blob)
            self.nodes[(field, blob.version)] = node
        return node

    def _slice(self, field: str, version: str, start: int, stop: int) -> bytes:
        """Bytes `start:stop` of the full packed value: a node's update usually repeats what
        the checkpoint appended, which is the tail, so the full value is rarely joined."""
        node = self._node((field, version))
        at = node.tail_at
        if start >= at and stop <= at + len(node.tail):
            return node.tail[start - at : stop - at]
        return self.full((field, version))[start:stop]

    def _items(self, field: str, version: str, start: int, stop: int, count: int) -> list[Any]:
        """The `count` packed items at bytes `start:stop` of the field's value: usually the
        items this version appended, already decoded (and immutable) in its node."""
        node = self.nodes.get((field, version)) or self._node((field, version))
        base = node.base
        if (
            node.shared and base is not None and base.count is not None
            and start == node.tail_at and stop == start + len(node.tail)
            and count == node.count - base.count  # type: ignore[operator]
        ):
            return node.value[len(node.value) - count :]
        return serde.loads(_array_header(count) + self._slice(field, version, start, stop))

    def _metadata_writes(self, raw: list[Any], versions: Mapping[str, str]) -> dict[str, Any]:
        """The inverse of `_encode_metadata_writes`."""
        writes: dict[str, Any] = {}
        for node, mode, payload in raw:
            if mode == 0:
                writes[node] = payload
                continue
            update: dict[Any, Any] = {}
            for key, kind, a, b, count in payload:
                if kind == 0:
                    update[key] = a
                elif kind == 1:
                    update[key] = serde.loads(self._slice(key, versions[key], a, b))
                else:
                    update[key] = self._items(key, versions[key], a, b, count)
            writes[node] = update
        return writes


def _full_node(data: bytes) -> _Node:
    value = serde.loads(data)
    shape = _split_array(data) if type(value) is list else None
    if shape is None:
        return _Node(None, data, 0, None, 0, data, value, _immutable(value))
    count, header = shape
    return _Node(None, data, 0, count, len(data) - header, data, value, _immutable_items(value))


def _append_node(field: str, base: _Node, blob: Blob) -> _Node:
    if base.count is None:
        raise SerializationError(f"field {field!r}: an append version's base is not a list")
    data = bytes(blob.data)
    if len(data) < 4:
        raise SerializationError(f"field {field!r}: malformed append version {blob.version!r}")
    added = int.from_bytes(data[:4])
    items = data[4:]
    count = base.count + added
    size = len(items)
    body_len = base.body_len + size
    # The full value's array header is 1, 3 or 5 bytes (see `_array_header`).
    tail_at = (1 if count < 16 else 3 if count < 1 << 16 else 5) + body_len - size
    value: Any = None
    shared = False
    if base.shared:  # else each checkpoint decodes its full bytes, which checks these items
        new = serde.loads(_array_header(added) + items)
        if _immutable_items(new):
            value, shared = base.value + new, True
    return _Node(base, items, tail_at, count, body_len, None, value, shared)


def record_pairs(records: Iterable[CheckpointRecord]) -> list[Pair]:
    return [pair for r in records for pair in r.versions.items()]


def remember_read(cache: ValueCache, records: Iterable[CheckpointRecord]) -> None:
    """Cache the versions of checkpoints just read: a put on top of one of them (a resume)
    then knows which fields are unchanged and which list fields it may store as appends."""
    cache.put_many_versions((r.thread_id, r.checkpoint_id, r.versions) for r in records)
