"""Reading: records and blobs back into `CheckpointTuple`s. Each stored version is decoded
once per read, and a list version is built from its base's decoded list plus its new items,
so listing a thread costs its stored size, not its size times its length."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from orchestration.checkpoint import serde
from orchestration.checkpoint.base import CheckpointConfig, CheckpointTuple, PendingWrite
from orchestration.checkpoint.storage.cache import ValueCache
from orchestration.checkpoint.storage.packing import COUNT, EMPTY_MAP, array_header, split_array
from orchestration.checkpoint.storage.records import (
    APPEND,
    FULL,
    VALUE,
    Blob,
    CheckpointRecord,
    Pair,
    WriteRecord,
    record_pairs,
)
from orchestration.checkpoint.storage.trusted import (
    trusted_checkpoint,
    trusted_config,
    trusted_metadata,
    trusted_tuple,
)
from orchestration.errors import SerializationError

_NO_BLOBS: Mapping[Pair, Blob] = {}

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
    shape = split_array(base_bytes)
    if shape is None:
        raise SerializationError(f"field {field!r}: an append version's base is not a list")
    count, header = shape
    parts = [base_bytes[header:]]
    for blob in reversed(chain):
        data = bytes(blob.data)
        count += COUNT.unpack_from(data)[0]
        parts.append(data[COUNT.size :])
    full = array_header(count) + b"".join(parts)
    cache.put_value(thread_id, field, pair[1], full)
    return full


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
            internal = {} if record.internal == EMPTY_MAP else serde.loads(record.internal)
        versions = record.versions
        value = self.value
        checkpoint = trusted_checkpoint(
            record.checkpoint_id, ts, {name: value((name, v)) for name, v in versions.items()},
            versions.copy(), record.next, internal,
        )
        metadata = trusted_metadata(
            record.source, record.step,
            self._metadata_writes(writes_raw, versions) if writes_raw else {}, extra,
        )
        parent_id = record.parent_id
        return trusted_tuple(
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
        node.full = array_header(node.count or 0) + b"".join(parts)
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
        return serde.loads(array_header(count) + self._slice(field, version, start, stop))

    def _metadata_writes(self, raw: list[Any], versions: Mapping[str, str]) -> dict[str, Any]:
        """The inverse of `encode_metadata_writes`."""
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
    shape = split_array(data) if type(value) is list else None
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
    # The full value's array header is 1, 3 or 5 bytes (see `array_header`).
    tail_at = (1 if count < 16 else 3 if count < 1 << 16 else 5) + body_len - size
    value: Any = None
    shared = False
    if base.shared:  # else each checkpoint decodes its full bytes, which checks these items
        new = serde.loads(array_header(added) + items)
        if _immutable_items(new):
            value, shared = base.value + new, True
    return _Node(base, items, tail_at, count, body_len, None, value, shared)


def remember_read(cache: ValueCache, records: Iterable[CheckpointRecord]) -> None:
    """Cache the versions of checkpoints just read: a put on top of one of them (a resume)
    then knows which fields are unchanged and which list fields it may store as appends."""
    cache.put_many_versions((r.thread_id, r.checkpoint_id, r.versions) for r in records)
