"""Reading: records and blobs back into `CheckpointTuple`s. Each stored version is decoded
once per read, and a list version is built from its base's decoded list plus its new items,
so listing a thread costs its stored size, not its size times its length."""

from __future__ import annotations

import enum
import gc
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from orchestration.checkpoint import serde
from orchestration.checkpoint.base import (
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    HistoryEntry,
    PendingWrite,
)
from orchestration.checkpoint.storage.cache import ValueCache
from orchestration.checkpoint.storage.packing import COUNT, EMPTY_MAP, array_header, split_array
from orchestration.checkpoint.storage.records import (
    APPEND,
    FULL,
    VALUE,
    Blob,
    CheckpointRecord,
    Pair,
    ReadRow,
    WriteRecord,
)
from orchestration.checkpoint.storage.trusted import (
    ConfigShell,
    MetadataShell,
    trusted_checkpoint,
    trusted_config,
    trusted_metadata,
    trusted_tuple,
)
from orchestration.errors import SerializationError

_NO_BLOBS: Mapping[Pair, Blob] = {}
_NO_SCALARS: Mapping[Pair, Any] = {}
_ABSENT = object()  # `scalars.get` default: a scalar may be None
_unpack_count = COUNT.unpack_from

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
    """Rebuild the tuples of `records` (one thread's, oldest first): `read_rows` on the
    records' decoded rows."""
    if not records:
        return []
    return read_rows(
        records[0].thread_id, [decoded_row(r) for r in records], cache, fetch, writes, known
    )


def decoded_row(record: CheckpointRecord) -> ReadRow:
    if record.parts is not None:
        internal, writes_raw, extra, ts = record.parts
    else:
        writes_raw, extra, ts = serde.loads(record.meta)
        internal = None if record.internal == EMPTY_MAP else serde.loads(record.internal)
    return (
        record.checkpoint_id, record.parent_id, record.step, record.source, record.next,
        record.versions, internal, writes_raw, extra, ts,
    )


def read_rows(
    thread_id: str,
    rows: Sequence[ReadRow],
    cache: ValueCache,
    fetch: Fetch,
    writes: Mapping[str, Sequence[WriteRecord]],
    known: Mapping[Pair, Blob] = _NO_BLOBS,
    *,
    history: bool = False,
    scalars: Mapping[Pair, Any] = _NO_SCALARS,
) -> list[Any]:
    """Rebuild the tuples of `rows` (one thread's checkpoints, decoded, oldest first) in one
    pass; with `history`, their `HistoryEntry`s instead (see `BaseCheckpointSaver.list_history`).

    `known` holds blobs the saver already has at hand (its rows' inline versions, or all of
    them for the memory saver); `scalars` the values of the `VALUE` versions it kept out of
    `known` (see `unpack_inline`), which are never fetched. `fetch(wanted)` must return the
    blobs of `wanted` and of their append chains not in `known` (it may stop at versions
    whose value is cached, and may return more); it returns `known` itself when it filled
    that in.

    Each stored (field, version) is decoded once per call, and a version appending to another
    is built from its base's decoded list plus the decoded new items, so listing a thread
    costs its stored size, not its size times its length. Every returned value is still the
    caller's own (see `_Reader.value`).
    """
    if not rows:
        return []
    # A read of a long chain or a listing makes thousands of objects and no reference cycles:
    # no cyclic collection meanwhile (see `gcpause`; inline here, as this also runs once per
    # superstep's resume, where a context manager costs more than the pause).
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _read_rows(thread_id, rows, cache, fetch, writes, known, history, scalars)
    finally:
        if paused:
            gc.enable()


def _read_rows(
    thread_id: str, rows: Sequence[ReadRow], cache: ValueCache, fetch: Fetch,
    writes: Mapping[str, Sequence[WriteRecord]], known: Mapping[Pair, Blob], history: bool,
    scalars: Mapping[Pair, Any],
) -> list[Any]:
    one = len(rows) == 1
    # One checkpoint (a resume reading its latest): its cached values are the cheapest source.
    # Many: fetch every version's own blob, so each is decoded once along its chain instead
    # of each cached full value being decoded on its own.
    pairs = dict.fromkeys([pair for row in rows for pair in row[5].items()])
    wanted = (
        [pair for pair in pairs if pair not in scalars and cache.value(thread_id, *pair) is None]
        if one
        else list(pairs.keys() - scalars.keys()) if scalars  # hashes known: no tuple hashed
        else list(pairs)
    )
    blobs: Mapping[Pair, Blob] = known
    if wanted:
        fetched = fetch(wanted)
        blobs = fetched if fetched is known or not known else {**known, **fetched}
    reader = _Reader(thread_id, cache, blobs, scalars, cache_first=one)
    if not one:
        reader.prime(pairs)
    tuples = (reader.build_history if history else reader.build_all)(rows, writes)
    # A put on top of the newest checkpoint read (a resume) compares with these full lists
    # to store a grown one as its new items only; and the read of the head after that put
    # (a worker recording how the run ended) finds the fields it did not change here,
    # scalars included, instead of fetching them again.
    for pair in rows[-1][5].items():
        node = reader.nodes.get(pair)  # none for a scalar kept in its row
        if node is not None and cache.value(thread_id, *pair) is None:
            cache.put_value(thread_id, *pair, reader.full(pair))
    cache.put_many_versions([(thread_id, row[0], row[5]) for row in rows])
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
    A list's `value` may be longer than `count`: the versions of one append chain share the
    decoded list of the newest one, each being its first `count` items.
    `tail` is the last stored piece of the full packed value (the whole value for a full
    blob, the appended items for an append), starting at byte `tail_at` of it.

    No `__init__`: a listing makes one per version of a chain (hundreds), and `_Node()` with
    its slots stored after costs about half of a call through `__init__` (a class whose
    `__init__` is Python code is called through a new interpreter frame in C). `_new_node`
    fills one elsewhere; `_Reader._prime_chain` fills its nodes inline.
    """

    __slots__ = ("base", "count", "body_len", "tail", "tail_at", "full", "value", "shared",
                 "handed")
    base: _Node | None
    tail: bytes | memoryview
    tail_at: int
    count: int | None  # the list's length, None if the value is not a list
    body_len: int  # packed bytes after the list header
    full: bytes | None
    value: Any
    shared: bool
    handed: bool


def _new_node(base: _Node | None, tail: bytes | memoryview, tail_at: int, count: int | None,
              body_len: int, full: bytes | None, value: Any, shared: bool) -> _Node:
    node = _Node()
    node.base = base
    node.tail = tail
    node.tail_at = tail_at
    node.count = count
    node.body_len = body_len
    node.full = full
    node.value = value
    node.shared = shared
    node.handed = False
    return node


class _Reader:
    def __init__(
        self, thread_id: str, cache: ValueCache, blobs: Mapping[Pair, Blob],
        scalars: Mapping[Pair, Any] = _NO_SCALARS, *, cache_first: bool,
    ) -> None:
        self.thread_id = thread_id
        self.cache = cache
        self.blobs = blobs
        self.scalars = scalars  # immutable values kept in their rows: shared
        self.cache_first = cache_first
        self.nodes: dict[Pair, _Node] = {}
        # Configs are immutable: a checkpoint's config is its child's parent_config.
        self.configs: dict[str, CheckpointConfig] = {}

    def build_all(
        self, rows: Sequence[ReadRow], writes: Mapping[str, Sequence[WriteRecord]]
    ) -> list[CheckpointTuple]:
        """The tuples of `rows`, each with fresh containers (callers may mutate what they get).

        A listing builds hundreds, so this is one loop with every name it uses bound once,
        the trusted builders (see `trusted`), and the listing's common cases
        inlined too: a list value that is a prefix of its chain's shared list (what `value`
        would return: a copy of that prefix), a scalar kept in its row, a config already
        built (a checkpoint's config is its child's `parent_config`)."""
        thread_id = self.thread_id
        value, metadata_writes = self.value, self._metadata_writes
        node_of, blob_of, scalar_of, absent = (
            self.nodes.get, self.blobs.get, self.scalars.get, _ABSENT
        )
        configs = self.configs
        config_of = configs.get
        new_config, new_checkpoint = trusted_config, trusted_checkpoint
        new_metadata, new_tuple = trusted_metadata, trusted_tuple
        writes_of = writes.get
        tuples: list[CheckpointTuple] = []
        append = tuples.append
        for cid, parent_id, step, source, next_, versions, internal, raw, extra, ts in rows:
            values: dict[str, Any] = {}
            for pair in versions.items():
                node = node_of(pair)
                if node is None:
                    scalar = scalar_of(pair, absent)
                    if scalar is not absent:
                        values[pair[0]] = scalar
                        continue
                    blob = blob_of(pair)
                    if blob is not None and blob.kind == VALUE:
                        values[pair[0]] = blob.value  # immutable: shared
                        continue
                elif node.shared:
                    count = node.count
                    if count is not None:
                        items = node.value
                        if node.handed or len(items) != count:
                            values[pair[0]] = items[:count]
                            continue
                values[pair[0]] = value(pair)
            config = config_of(cid)
            if config is None:
                config = configs[cid] = new_config(thread_id, cid)
            parent = None
            if parent_id:
                parent = config_of(parent_id)
                if parent is None:
                    parent = configs[parent_id] = new_config(thread_id, parent_id)
            pending = writes_of(cid)
            append(new_tuple(
                config,
                new_checkpoint(
                    cid, ts, values, versions.copy(), next_, {} if internal is None else internal
                ),
                new_metadata(source, step, metadata_writes(raw, versions) if raw else {}, extra),
                parent,
                tuple([PendingWrite(w.task_id, w.channel, serde.loads(w.data)) for w in pending])
                if pending else (),
            ))
        return tuples

    def build_history(
        self, rows: Sequence[ReadRow], writes: Mapping[str, Sequence[WriteRecord]]
    ) -> list[HistoryEntry]:
        """`build_all` for `get_state_history`: each row's `HistoryEntry` (values, next,
        config, metadata, ts, parent config, and the whole tuple only when the checkpoint has
        pending writes), one loop as in `build_all`, no `Checkpoint` or `CheckpointTuple`
        built only to be taken apart again."""
        thread_id = self.thread_id
        value, metadata_writes = self.value, self._metadata_writes
        node_of, blob_of, scalar_of, absent = (
            self.nodes.get, self.blobs.get, self.scalars.get, _ABSENT
        )
        configs = self.configs
        config_of = configs.get
        new_config = trusted_config
        writes_of = writes.get
        # Each row's config and metadata: shells filled here (see `trusted`), the builders'
        # work without a call through `__init__` each.
        config_shell, config_class = ConfigShell, CheckpointConfig
        metadata_shell, metadata_class = MetadataShell, CheckpointMetadata
        entries: list[HistoryEntry] = []
        append = entries.append
        for row in rows:
            cid, parent_id, step, source, next_, versions, internal, raw, extra, ts = row
            values: dict[str, Any] = {}
            for pair in versions.items():
                node = node_of(pair)
                if node is None:
                    scalar = scalar_of(pair, absent)
                    if scalar is not absent:
                        values[pair[0]] = scalar
                        continue
                    blob = blob_of(pair)
                    if blob is not None and blob.kind == VALUE:
                        values[pair[0]] = blob.value  # immutable: shared
                        continue
                elif node.shared:
                    count = node.count
                    if count is not None:
                        items = node.value
                        if node.handed or len(items) != count:
                            values[pair[0]] = items[:count]
                            continue
                values[pair[0]] = value(pair)
            config = config_of(cid)
            if config is None:
                config = configs[cid] = config_shell()
                config.thread_id = thread_id
                config.checkpoint_id = cid
                config.checkpoint_ns = ""
                config.__class__ = config_class
            parent = None
            if parent_id:
                parent = config_of(parent_id)
                if parent is None:
                    parent = configs[parent_id] = new_config(thread_id, parent_id)
            metadata = metadata_shell()
            metadata.source = source
            metadata.step = step
            metadata.writes = metadata_writes(raw, versions) if raw else {}
            metadata.extra = extra
            metadata.__class__ = metadata_class
            pending = writes_of(cid)
            append((
                values, next_, config, metadata, ts, parent,
                self._pending_tuple(row, values, config, metadata, parent, pending)
                if pending else None,
            ))
        return entries

    def _pending_tuple(
        self, row: ReadRow, values: dict[str, Any], config: CheckpointConfig,
        metadata: CheckpointMetadata, parent: CheckpointConfig | None,
        pending: Sequence[WriteRecord],
    ) -> CheckpointTuple:
        """The whole tuple of a history row with pending writes, for its interrupts (it
        shares the entry's values: it is read, never handed out)."""
        cid, _, _, _, next_, versions, internal, _, _, ts = row
        return trusted_tuple(
            config,
            trusted_checkpoint(
                cid, ts, values, versions.copy(), next_, {} if internal is None else internal
            ),
            metadata,
            parent,
            tuple([PendingWrite(w.task_id, w.channel, serde.loads(w.data)) for w in pending]),
        )

    def value(self, pair: Pair) -> Any:
        """The value of `pair` for one checkpoint, sharing nothing another checkpoint could
        change: immutable values are shared, lists of immutable items are copied (shallow),
        anything else is decoded again from its bytes."""
        nodes = self.nodes
        node = nodes.get(pair)
        if node is None:
            scalar = self.scalars.get(pair, _ABSENT)
            if scalar is not _ABSENT:
                return scalar
            blob = self.blobs.get(pair)
            if blob is not None:
                kind = blob.kind
                if kind == VALUE:
                    return blob.value  # an immutable scalar kept in its row: no node needed
                if kind == APPEND and not self.cache_first:
                    # A listing: the base is usually the version the previous checkpoint read.
                    key = (pair[0], blob.base or "")
                    base = nodes.get(key)
                    if base is not None:
                        self._chain_nodes(pair[0], key, base, [blob])
                        node = nodes[pair]
            if node is None:
                node = self._node(pair)
        if node.shared:
            count = node.count
            if count is None:
                return node.value
            items = node.value
            if not node.handed and len(items) == count:
                node.handed = True
                return items
            return items[:count]
        if not node.handed and node.value is not None:
            node.handed = True
            return node.value
        return serde.loads(self.full(pair))

    def prime(self, pairs: Sequence[Pair] | dict[Pair, Any]) -> None:
        """A listing: decode each append chain once, from its newest listed version, in a
        single call; the chain's older versions are prefixes of that list (see `_Node`).
        Without this, each version would decode its own new items and copy its base's list.

        `pairs` come in their rows' order, oldest first: backwards, a field's first version is
        its chain's newest (a version is the id of the checkpoint that made it, and a row
        names its ancestors' versions), so no sort is needed. (On a forked thread a branch's
        top may come after an older branch's: its chain then decodes from the versions the
        branches share, a little more work, the same nodes.)"""
        blobs = self.blobs
        nodes = self.nodes
        for pair in reversed(pairs):
            if pair in nodes:
                continue
            blob = blobs.get(pair)
            if blob is not None and blob.kind == APPEND:
                self._prime_chain(pair[0], blob)

    def _prime_chain(self, field: str, top: Blob) -> None:
        """Nodes for the append chain ending at `top`, its items decoded in one call."""
        blobs = self.blobs
        nodes = self.nodes
        chain = [top]
        while True:
            key = (field, chain[-1].base or "")
            base = nodes.get(key)
            if base is not None:
                break
            blob = blobs.get(key)
            if blob is None or blob.kind != APPEND:
                base = self._node(key)  # a full value, a value kept in its row, or cached
                break
            chain.append(blob)
        self._chain_nodes(field, key, base, chain)

    def _chain_nodes(self, field: str, key: Pair, base: _Node, chain: list[Blob]) -> None:
        """Nodes for the appends of `chain` (newest first) on `base`, the node of `key`, all
        sharing one decoded list. Made one by one, each version's list was
        its base's copied plus its own items: reading the head of a thread whose list field
        had 7,500 appends copied ~28 million list items, 0.4 s per read
        (`manage.py measure_pages`)."""
        nodes = self.nodes
        base_count = count = base.count
        if count is None:
            raise SerializationError(f"field {field!r}: an append version's base is not a list")
        base_len = body_len = base.body_len
        # The appended items, after a slot for the array header they are decoded under:
        # one join, no second copy of a chain that is often hundreds of KB.
        tails: list[bytes | memoryview] = [b""]
        # (version, items, tail_at, count, body_len) of each append, oldest first: the nodes
        # are made once the chain's items are decoded, with their value and whether shared.
        pieces: list[tuple[str, memoryview, int, int, int]] = []
        for blob in reversed(chain):
            data = blob.data
            if len(data) < 4:
                raise SerializationError(
                    f"field {field!r}: malformed append version {blob.version!r}"
                )
            # A view, not a copy: the items are copied once, by the join that decodes them
            # (copied here too, a 300-version history moved its 300 KB twice more).
            items = memoryview(data)[4:]
            count += _unpack_count(data)[0]
            size = len(items)
            body_len += size
            # The full value's array header is 1, 3 or 5 bytes (see `array_header`).
            tail_at = (1 if count < 16 else 3 if count < 1 << 16 else 5) + body_len - size
            pieces.append((blob.version, items, tail_at, count, body_len))
            tails.append(items)
        full: bytes | None = None
        value: Any = None
        shared = False
        if base.shared:
            # The base's items are decoded already: decode only the chain's own.
            added = count - base_count
            tails[0] = array_header(added)
            new = serde.loads(b"".join(tails))
            if type(new) is not list or len(new) != added:
                raise SerializationError(
                    f"field {field!r}: append version {chain[0].version!r} does not decode "
                    "to its items"
                )
            if _immutable_items(new):
                old = base.value
                value, shared = (old if len(old) == base_count else old[:base_count]) + new, True
        if not shared:
            # The whole list decoded from its bytes, joined in one allocation (a chain is
            # often hundreds of KB; a second copy to prepend the header costs as much).
            body = memoryview(self.full(key))[-base_len:] if base_len else b""
            tails[0] = body
            full = b"".join([array_header(count), *tails])
            value = serde.loads(full)
            if type(value) is not list or len(value) != count:
                raise SerializationError(
                    f"field {field!r}: append version {chain[0].version!r} does not decode "
                    "to its list"
                )
            shared = _immutable_items(value)
        # Not shared: the newest version's node alone holds the list, given to one checkpoint;
        # the others decode their bytes.
        held = value if shared else None
        blank = _Node
        for version, items, tail_at, count, body_len in pieces:
            node = blank()  # `_new_node`, inline: a chain makes hundreds
            node.base = base
            node.tail = items
            node.tail_at = tail_at
            node.count = count
            node.body_len = body_len
            node.full = None
            node.value = held
            node.shared = shared
            node.handed = False
            base = nodes[(field, version)] = node
        base.full = full
        if not shared:
            base.value = value

    def full(self, pair: Pair) -> bytes:
        """The whole packed value of `pair`, joined from its append chain once."""
        node = self._node(pair)
        if node.full is not None:
            return node.full
        if node.base is None:  # a value kept decoded in its row
            node.full = serde.dumps(node.value, where=f"state field {pair[0]!r}")
            return node.full
        parts: list[bytes | memoryview] = []
        below: _Node | None = node
        while below is not None and below.full is None:
            parts.append(below.tail)
            below = below.base
        if below is None or below.count is None:  # cannot happen: chains end in a full list
            raise SerializationError(f"field {pair[0]!r}: an append version's base is not a list")
        parts.append(below.full[len(below.full) - below.body_len :])
        parts.append(array_header(node.count or 0))
        parts.reverse()
        node.full = b"".join(parts)  # one copy of what may be hundreds of KB
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
            scalar = self.scalars.get(key, _ABSENT)
            if scalar is not _ABSENT:
                node = self.nodes[key] = _new_node(None, b"", 0, None, 0, None, scalar, True)
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
                node = _new_node(None, b"", 0, None, 0, None, blob.value, True)
                self.nodes[key] = node
                break
            node = _full_node(data if blob is None else bytes(blob.data))
            self.nodes[key] = node
            break
        if chain:
            self._chain_nodes(field, key, node, chain)
            return self.nodes[pair]
        return node

    def _slice(self, field: str, version: str, start: int, stop: int) -> bytes | memoryview:
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
            end = node.count
            return node.value[end - count : end]
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
        return _new_node(None, data, 0, None, 0, data, value, _immutable(value))
    count, header = shape
    return _new_node(None, data, 0, count, len(data) - header, data, value, _immutable_items(value))


def remember_read(cache: ValueCache, records: Iterable[CheckpointRecord]) -> None:
    """Cache the versions of checkpoints just read: a put on top of one of them (a resume)
    then knows which fields are unchanged and which list fields it may store as appends."""
    cache.put_many_versions((r.thread_id, r.checkpoint_id, r.versions) for r in records)
