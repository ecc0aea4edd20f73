"""`DjangoCheckpointSaver`: the checkpoint tree in the Django models (SQLite or PostgreSQL).

Same storage core as the SQLite saver: a `Checkpoint` row per checkpoint and a `FieldVersion`
row per changed field (appends stored as the appended items only), except that a small changed
field stays in the checkpoint's row (`Checkpoint.vals`). Writes and the hot reads
are SQL (`checkpoint_sql`): on PostgreSQL a put is one statement that also checks the run's
lease, locking its row (the fence), and moves the thread's head, so a worker that lost its
lease commits nothing, in one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTransform

from orchestration.checkpoint import storage
from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    as_checkpoint_config,
    validate_filter,
)
from orchestration.checkpoint.filters import (
    ExtraCondition,
    matches_leftover,
    split_filter,
    sqlite_condition,
)
from orchestration.checkpoint.namespaces import config_in, rehome
from orchestration.checkpoint.storage import (
    APPEND,
    Blob,
    CheckpointRecord,
    Pair,
    WriteRecord,
)
from orchestration.checkpoint.storage.inline import unpack_inline
from orchestration.errors import CheckpointNotFound
from orchestration.runtime import checkpoint_sql, models
from orchestration.runtime.leases import Lease, LeaseLost
from orchestration.runtime.write_behind import (
    SendAhead,
    Writer,
    close_writer,
    current_writer,
    writer_for,
)

_T = TypeVar("_T")

__all__ = ["DjangoCheckpointSaver"]

_FIELDS = (
    "checkpoint_id", "parent__checkpoint_id", "step", "source", "next", "versions", "internal",
    "writes", "extra", "vals",
)


class DjangoCheckpointSaver(BaseCheckpointSaver):
    """Checkpoints in the Django database `using`.

    `lease` (a worker's run lease) fences every write: the write's own statement (PostgreSQL,
    and a put on SQLite) or transaction (SQLite) proves the lease on the run row (PostgreSQL
    locks it FOR SHARE; a SQLite put reads it under the write lock, its other writes update
    its `heartbeat_at`) and writes nothing if that matched no row (LeaseLost is raised).
    `fence`, a callable, is the general form: called first inside the write's transaction,
    it raises to stop the write.

    `durability`: "sync" (default) commits each put before `put` returns. "async" hands the
    put to a write-behind writer (`write_behind`: on PostgreSQL the statement is sent on a
    private connection and its outcome collected later; on SQLite a thread) and returns at
    once, so superstep N's commit overlaps superstep N+1's work; at most one put is in
    flight, each still its own fenced transaction. Everything is flushed (and a failure
    raised) before the next put, any read or `put_writes`, and when the engine calls `flush`
    (at the end of a run and before a node declared with side effects runs). A put inside a
    caller's `transaction.atomic`, or with a `fence` callable, is always synchronous. On
    PostgreSQL the put of a run's input checkpoint is not even sent until the first
    superstep is done: that superstep's pending writes (an interrupt at its first node) then
    commit in the same statement, and anything else sends it on its own first.

    `synchronous_commit=False` (PostgreSQL, durability="async"; what a worker uses unless
    STEPWISE_CHECKPOINT_SYNCHRONOUS_COMMIT is on): each write-behind put commits without
    waiting for the WAL flush (set by its statement for its own transaction). A crash of
    this process loses no more than before; a crash of the PostgreSQL server can also lose
    the puts of its last few hundred ms, which re-run on resume like a superstep in flight,
    but never one that a later synchronous commit follows (WAL is replayed in order: the
    caller's own record of a run's end or a review makes every put before it durable), and
    never the superstep before a node with side effects (`flush_durable` waits for the WAL
    flush).
    For callers that record a run's end with a synchronous commit of their own, as a
    worker does; `flush` alone then means committed, not yet on disk.
    """

    def __init__(
        self,
        *,
        fence: Callable[[], None] | None = None,
        lease: Lease | None = None,
        using: str = "default",
        durability: str = "sync",
        synchronous_commit: bool = True,
    ) -> None:
        if durability not in ("sync", "async"):
            raise ValueError(f"durability must be 'sync' or 'async', not {durability!r}")
        if type(synchronous_commit) is not bool:
            raise TypeError(f"synchronous_commit must be a bool, not {synchronous_commit!r}")
        self.fence = fence
        self.lease = lease
        self.using = using
        self.durability = durability
        # SQLite has no WAL flush to skip: its commits are made in this process.
        self.synchronous_commit = synchronous_commit or connections[using].vendor != "postgresql"
        # A put committed without the WAL flush since the last `flush_durable`.
        self._unflushed = False
        # The put in flight on the write-behind writer: (its writer, thread id, checkpoint id).
        self._inflight: tuple[Writer, str, str] | None = None
        self._cache = storage.ValueCache()
        # (thread id, checkpoint id) -> row pk of checkpoints this saver wrote or read: the
        # next put names its parent row directly instead of looking it up.
        self._pks: dict[tuple[str, str], int] = {}
        # Pending writes held back by `put_writes_deferred` (task id -> writes, in write
        # order) and the checkpoint they belong to: they go with the next put, or at flush.
        self._held: dict[str, list[WriteRecord]] = {}
        self._held_at: CheckpointConfig | None = None
        # The put of a run's input checkpoint, not yet sent (PostgreSQL write-behind): see
        # `_write_behind`.
        self._held_put: _HeldPut | None = None
        # `keep_next_read`: armed (True), then the head read it kept for one more read.
        self._keep_read = False
        self._kept: tuple[tuple[str, str], CheckpointTuple] | None = None
        # The root checkpoint this saver put last and the pending writes it added to it
        # since (`_OwnHead`), and whether the next head read may be answered from it
        # (`read_own_head_next`).
        self._own_head: _OwnHead | None = None
        self._trust_own_head = False
        # `no_head_next`: the thread whose next head read is answered "none".
        self._empty_thread: str | None = None
        self._inline_room: int | None = None
        # The lease as a fence (`_lease_fence`), built once.
        self._fence_args: checkpoint_sql.FenceArgs | None = None

    # --- the port -------------------------------------------------------------------------

    def keep_next_read(self) -> None:
        """The next read of a thread's head (`get_tuple` without a checkpoint id) is kept and
        answers the one read of that head after it, unless this saver writes in between. For
        a worker: it reads the head to plan a resume, and the engine reads it again
        microseconds later (the same window as between the engine's read and its first
        write: the run's lease fences the writes, not other readers)."""
        self._keep_read = True
        self._kept = None

    def read_own_head_next(self) -> None:
        """The next read of a thread's head (`get_tuple` without a checkpoint id, root
        namespace) is answered from what this saver wrote, without a round trip, if the last
        root checkpoint it put is that thread's: its row and the pending writes it added to
        it since, decoded as a read of those rows would be, after a `flush` (so every write
        is committed, and a refused one raises as the read would). For a worker recording
        how its run ended: its lease fences every checkpoint write of the thread, so what it
        put last is the head. One read only; anything else reads the database."""
        self._trust_own_head = True

    def no_head_next(self, thread_id: str) -> None:
        """The next read of thread `thread_id`'s head (root namespace, no checkpoint id) is
        answered "no checkpoint" without a round trip, unless this saver writes first. For a
        worker starting a thread's first run: the thread row it claimed the run with had no
        head, which every root put moves (one statement with it, or a trigger), and its lease
        fences every write of the thread's checkpoints. One read only."""
        self._forget_kept_read()
        self._empty_thread = thread_id

    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        empty, self._empty_thread = self._empty_thread, None
        if (
            empty is not None and empty == config.thread_id and config.checkpoint_id is None
            and not config.checkpoint_ns
        ):
            return None
        if self._trust_own_head:
            self._trust_own_head = False
            own = self._own_head
            if own is not None and config.checkpoint_id is None and own.names(config):
                return self._own_head_read(own, config)
        if self._kept is not None or self._keep_read:
            return self._kept_read(config)
        return self._get_tuple(config)

    def _forget_kept_read(self) -> None:
        """Any write of this saver ends what `keep_next_read` (or `no_head_next`) kept or
        armed."""
        self._kept, self._keep_read = None, False
        self._empty_thread = None

    def _kept_read(self, config: CheckpointConfig) -> CheckpointTuple | None:
        kept, self._kept = self._kept, None
        key = (config.thread_id, config.checkpoint_ns)
        if (
            config.checkpoint_id is not None or self._held or self._inflight is not None
            or self._held_put is not None
        ):
            self._keep_read = False
            return self._get_tuple(config)
        if kept is not None and kept[0] == key:
            return kept[1]
        found = self._get_tuple(config)
        if self._keep_read and found is not None:
            self._kept = (key, found)
        self._keep_read = False
        return found

    def _own_head_read(self, own: _OwnHead, config: CheckpointConfig) -> CheckpointTuple:
        """`own`'s tuple, once every write is committed (`read_own_head_next`)."""
        self._own_head = None  # a write failing in the flush leaves nothing to trust
        self.flush()
        self._own_head = own
        # decoded afresh from the bytes the rows hold: the caller owns what it gets, as
        # from a read (`versions` is handed over to the tuple, so it gets a copy)
        record = dataclass_replace(own.record, versions=dict(own.record.versions))
        writes = [w for records in own.writes.values() for w in records]
        tuples = storage.read_tuples(
            [record], self._cache, lambda pairs: self._fetch(config.thread_id, pairs),
            {record.checkpoint_id: writes} if writes else {},
        )
        return tuples[0]

    def _get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        self.flush()
        connection = connections[self.using]
        found = checkpoint_sql.checkpoint_row(
            connection, config.thread_id, config.checkpoint_id, config.checkpoint_ns
        )
        if found is None:
            return None
        row, writes, vals = found
        pk, cid, parent, step, source, next_, versions, internal, meta, extra, has_writes = row
        record = CheckpointRecord(
            thread_id=config.thread_id, checkpoint_id=cid, parent_id=parent, step=step,
            source=source, next=tuple(checkpoint_sql.load_json(next_)),
            versions=checkpoint_sql.load_json(versions), internal=bytes(internal),
            meta=bytes(meta), extra_json=checkpoint_sql.load_json(extra), ts=datetime.min,
        )
        self._remember_pk(config.thread_id, cid, pk)
        if writes is not None:
            # The versions kept in the row came with it (PostgreSQL): what the cache lacks
            # is looked for there first (unpacked only then), and fetched if not there.
            tuples = storage.read_tuples(
                [record], self._cache,
                lambda pairs: self._fetch(config.thread_id, pairs, _kept_versions(cid, vals)),
                {cid: writes} if writes else {},
            )
        else:
            tuples = self._decode(config.thread_id, [record], has_writes=bool(has_writes))
        return rehome(tuples, config)[0]

    def thread_configs(self) -> list[CheckpointConfig]:
        self.flush()
        keys = (models.Checkpoint.objects.using(self.using)
                .order_by("thread__thread_id", "checkpoint_ns")
                .values_list("thread__thread_id", "checkpoint_ns").distinct())
        return [CheckpointConfig(thread_id, checkpoint_ns=ns) for thread_id, ns in keys]

    def list(
        self,
        config: CheckpointConfig | None,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[CheckpointTuple]:
        if config is None:  # every thread's (LangGraph's `list(None, filter=...)`)
            return self.list_all(limit, before=before, filter=filter)
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        wanted = validate_filter(filter)
        self.flush()
        if limit is not None and limit <= 0:
            return []
        rows = self._checkpoints(config.thread_id).filter(checkpoint_ns=config.checkpoint_ns)
        if before is not None and before.checkpoint_id is not None:
            rows = rows.filter(checkpoint_id__lt=before.checkpoint_id)
        split = split_filter(wanted)
        rows = rows.filter(**split.columns)
        for condition in split.extra:
            rows = self._filter_extra(rows, condition)
        rows = rows.order_by("-checkpoint_id")
        if limit is not None and not split.leftover:
            rows = rows[:limit]
        records, known = _records_of(config.thread_id, rows)
        if split.leftover:
            records = matches_leftover(records, split.leftover, limit)
        records.reverse()
        return rehome(self._decode(config.thread_id, records, known=known), config)

    def get_tuples(
        self, config: CheckpointConfig, checkpoint_ids: Collection[str]
    ) -> dict[str, CheckpointTuple]:
        """The checkpoints `checkpoint_ids` of `config`'s thread and namespace, by id (an id
        not stored is left out), read together: the field versions they share (a list's
        append chain, most of a checkpoint's and its parent's values) are fetched and
        decoded once. Read one by one, a checkpoint and its parent on a thread whose list
        had 7,500 appends fetched and decoded that chain twice."""
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        self.flush()
        wanted = sorted(set(checkpoint_ids))
        if not wanted:
            return {}
        rows = (
            self._checkpoints(config.thread_id)
            .filter(checkpoint_ns=config.checkpoint_ns, checkpoint_id__in=wanted)
            .order_by("checkpoint_id")
        )
        records, known = _records_of(config.thread_id, rows)
        found = rehome(self._decode(config.thread_id, records, known=known, by_ids=True), config)
        return {t.checkpoint.id: t for t in found}

    def put(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        self._forget_kept_read()
        if not config.checkpoint_ns:
            self._own_head = None  # until this put is made (or handed to the writer)
        encoded = storage.encode_checkpoint(
            config.thread_id, config.checkpoint_id, checkpoint, metadata, self._cache,
            inline_max=self._inline_max(),
        )
        writer = self._writer() if self.durability == "async" else None
        if writer is not None:
            self._write_behind(writer, config, checkpoint, metadata, encoded)
        else:
            # A resume's answers held back (SQLite, `put_writes_deferred`) go with the resumed
            # superstep's checkpoint, their checkpoint's child: one transaction for both.
            held = self._take_held(config) if self._held else ()
            self.flush()
            pk = self._put_sync(encoded, self._put_args(config, checkpoint, metadata), held)
            self._remember_pk(config.thread_id, checkpoint.id, pk)
            self._remember_put(encoded)
        if not config.checkpoint_ns:
            self._own_head = _OwnHead(config.thread_id, encoded.record)
        return _config_of(config, checkpoint.id)

    def _put_sync(self, encoded: storage.EncodedPut, args: dict[str, Any],
                  held: Sequence[tuple[str, list[WriteRecord]]] = ()) -> int:
        """The put, committed before this returns, fenced as `_fenced` says; with `held`
        (SQLite: a resume's answers, on the put's parent) written first in its transaction.
        A lease's fence (a worker's every superstep) is taken without `_fenced`: its
        generator context manager cost a few µs per put, as much as the statement's
        parameters."""
        lease = self.lease
        if lease is None:
            with self._fenced() as fence:
                return self._put_now(encoded, args, held, fence)
        fence = self._live_fence(lease)
        try:
            return self._put_now(encoded, args, held, fence)
        except checkpoint_sql.FenceFailed:
            raise _lost(lease) from None

    def _put_now(self, encoded: storage.EncodedPut, args: dict[str, Any],
                 held: Sequence[tuple[str, list[WriteRecord]]],
                 fence: checkpoint_sql.FenceArgs | None) -> int:
        connection = connections[self.using]
        if not held:
            return checkpoint_sql.put_checkpoint(connection, encoded, fence=fence, **args)
        try:
            return checkpoint_sql.put_checkpoint_after_writes(
                connection, encoded, held, fence=fence, **args)
        except checkpoint_sql.ParentMissing:
            raise _no_checkpoint_for_writes(encoded.record.thread_id,
                                            encoded.record.parent_id or "") from None

    def _holds_answers(self) -> bool:
        """Whether `put_writes_deferred` holds a resume's answers for the next put on this
        synchronous saver: on SQLite, where they then commit in the put's transaction
        (`checkpoint_sql.put_checkpoint_after_writes`). A `fence` callable runs in each
        write's own transaction: not folded."""
        return (self.durability == "sync" and self.fence is None
                and connections[self.using].vendor == "sqlite")

    def _take_held(self, config: CheckpointConfig) -> list[tuple[str, list[WriteRecord]]]:
        """The held writes, taken, if they belong to `config`'s checkpoint (the put's
        parent); else nothing (the `flush` before the put writes them on their own)."""
        at = self._held_at
        if at is None or not _same_checkpoint(at, config):
            return []
        held = list(self._held.items())
        self._held, self._held_at = {}, None
        return held

    def _live_fence(self, lease: Lease) -> checkpoint_sql.FenceArgs:
        """The lease's fence for a write, or LeaseLost if the lease is already known lost."""
        if lease.lost.is_set():
            raise LeaseLost(lease.run_id, lease.token)
        return self._lease_fence(lease)

    def _lease_fence(self, lease: Lease) -> checkpoint_sql.FenceArgs:
        """The lease as the writes' fence. Built once per lease (a frozen dataclass costs
        about a µs to build), checked against the lease's fields so a lease changed in place
        is never fenced with its old token."""
        fence = self._fence_args
        if fence is None or fence.run_id != lease.run_id or fence.token != lease.token:
            fence = self._fence_args = checkpoint_sql.FenceArgs(lease.run_id, lease.token)
        return fence

    def _remember_put(self, encoded: storage.EncodedPut) -> None:
        """Cache what the put stored. The engine's SQLite saver reads a row's inline versions
        with the row, so `remember_put` skips them; this saver fetches them with a query of
        their own (`_fetch`), so a read of the head right after the put (the worker recording
        how the run ended) would fetch the values the put just wrote: keep them too."""
        storage.remember_put(self._cache, encoded, keep_inline=True)

    def _inline_max(self) -> int:
        """Room for small field versions in the checkpoint's row (`checkpoint_sql`'s limit for
        the alias's engine): each one kept there is a `FieldVersion` row not written."""
        inline_max = self._inline_room
        if inline_max is None:  # the alias's engine does not change: asked once
            inline_max = checkpoint_sql.inline_max(connections[self.using])
            self._inline_room = inline_max
        return inline_max

    def flush(self) -> None:
        """Wait for the put in flight (durability="async"); raise its failure: `LeaseLost`
        if the fence refused it (nothing of it was written), or the database's error. Then
        write the pending writes held back by `put_writes_deferred`, if no put took them."""
        self._collect()
        if self._held:
            self._write_held()

    def flush_durable(self) -> None:
        """`flush`, then, if this thread's write-behind connection committed anything
        without waiting for the WAL flush, wait for it (one synchronous commit)."""
        self.flush()
        if not self._unflushed:
            return
        # Any connection's synchronous commit flushes the whole WAL: a writer closed since
        # the put (`close`) is replaced. Inside a caller's transaction there is none: the
        # next call outside it waits instead.
        writer = self._writer()
        if isinstance(writer, SendAhead):
            with connections[self.using].wrap_database_errors:
                writer.make_durable()
            self._unflushed = False

    def put_writes_deferred(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        """A resume's answers: with durability="async" on PostgreSQL they are held and go in
        the statement of the next put when it is the resumed superstep's (its parent is
        their checkpoint): one commit for both, fenced like any put. On SQLite (synchronous)
        the same, in the put's transaction (`checkpoint_sql.put_checkpoint_after_writes`).
        Any read, other write, `flush` or `close` writes them first. A crash before that
        loses them together with that superstep, and the thread waits at its interrupt as
        before the resume (a worker's retried run delivers the answers again from the run's
        input)."""
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        if config.checkpoint_id is None:
            raise ValueError("put_writes needs a config naming the checkpoint the writes belong to")
        self._forget_kept_read()
        writer = self._writer()
        # held for the next put: PostgreSQL's write-behind statement, or SQLite's transaction
        held = (self._holds_answers() if writer is None
                else connections[self.using].vendor == "postgresql")
        if not held:
            self.put_writes(config, writes, task_id)
            return
        own, self._own_head = self._own_head, None
        records = storage.encode_writes(writes, task_id)
        self._collect()  # never a write outstanding behind a put in flight
        at = self._held_at
        if at is not None and not _same_checkpoint(at, config):
            self._write_held()
        self._held_at = config
        self._held.pop(task_id, None)  # a task's writes replace its earlier ones, at the end
        self._held[task_id] = records
        self._own_head = _added(own, config, task_id, records)

    def _write_held(self) -> None:
        """Write the held-back pending writes on their own (no put took them)."""
        held, at = self._held, self._held_at
        self._held, self._held_at = {}, None
        assert at is not None and at.checkpoint_id is not None
        for task_id, records in held.items():
            self._write_pending(at.thread_id, at.checkpoint_id, task_id, records)

    def _write_pending(
        self, thread_id: str, checkpoint_id: str, task_id: str, records: list[WriteRecord]
    ) -> None:
        """One task's pending writes in a fenced statement of their own."""
        with self._fenced() as fence:
            found = checkpoint_sql.put_pending_writes(
                connections[self.using], thread_id, checkpoint_id, task_id, records, fence,
                self._pks.get((thread_id, checkpoint_id)),
            )
        if not found:
            raise _no_checkpoint_for_writes(thread_id, checkpoint_id)

    def _collect(self) -> None:
        """Wait for the put in flight, if any (this saver's, or another's on this thread); a
        held input put is sent first, as its own statement."""
        held_put, self._held_put = self._held_put, None
        if held_put is not None:
            self._submit(held_put)
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            # Another saver on this thread may have a write in flight to the same database:
            # what this saver reads or writes next comes after it.
            other = current_writer(self.using)
            if other is not None and other.owner is not None and other.owner is not self:
                other.owner.flush()
            return
        writer, thread_id, checkpoint_id = inflight
        try:
            with connections[self.using].wrap_database_errors:
                pk = writer.wait()
        except checkpoint_sql.ParentMissing:
            raise _no_checkpoint_for_writes(thread_id, f"the parent of {checkpoint_id}") from None
        if pk is None:
            lease = self.lease
            assert lease is not None  # only a fenced put comes back without a row
            lease.lost.set()
            raise LeaseLost(lease.run_id, lease.token)
        self._remember_pk(thread_id, checkpoint_id, pk)

    def close(self) -> None:
        """Flush, then close this thread's write-behind connection (the end of a worker's
        run execution). The saver stays usable: a later async put opens a new one."""
        try:
            self.flush()
        finally:
            if self.durability == "async":
                close_writer(self.using)

    def _writer(self) -> Writer | None:
        """The write-behind writer for this put, or None when it must be synchronous."""
        if self.durability != "async" or self.fence is not None:
            return None
        connection = connections[self.using]
        if connection.in_atomic_block:
            return None  # the caller's transaction must contain the put
        return writer_for(
            self.using, lambda: checkpoint_sql.private_connection(connection),
            send_ahead=connection.vendor == "postgresql",
        )

    def _write_behind(
        self, writer: Writer, config: CheckpointConfig, checkpoint: Checkpoint,
        metadata: CheckpointMetadata, encoded: storage.EncodedPut,
    ) -> None:
        args = self._put_args(config, checkpoint, metadata)
        early = self._early_statement(writer, config, encoded, args, metadata)
        self._collect()  # never two in flight; a lost lease stops here, before this is sent
        if writer.owner is not None:
            writer.owner.flush()  # another saver's write on this thread
        held: list[tuple[str, WriteRecord]] = []
        if self._held:
            at = self._held_at
            assert at is not None
            if _same_checkpoint(at, config):
                # The resumed superstep's checkpoint: the answers commit with it.
                held = [(task_id, w) for task_id, records in self._held.items() for w in records]
                self._held, self._held_at = {}, None
            else:
                self._write_held()
        lease = self.lease
        if lease is not None and lease.lost.is_set():
            raise LeaseLost(lease.run_id, lease.token)
        # The parent's row pk is known once the put in flight (the parent) is collected.
        args["parent_pk"] = self._pks.get((config.thread_id, config.checkpoint_id or ""))
        put = _HeldPut(
            writer, config.thread_id, config.checkpoint_ns, checkpoint.id, encoded, args
        )
        self._remember_put(encoded)
        if not held and metadata.source == "input" and _sends_ahead(writer):
            # A run's input checkpoint is followed by its first superstep, whose pending
            # writes (an interrupt there, a failed task's finished siblings) then go in the
            # same statement: one commit instead of two (`put_writes`). Anything else this
            # saver does first sends it on its own (`_collect`), and as the input's caller
            # still holds the input, a crash before that loses no more than a crash during
            # the put: the thread is as it was before the call (a worker's retried run
            # applies the run's input again). Another saver on this thread flushes this one
            # before it reads or writes, as for a put in flight (`writer.owner`).
            self._held_put = put
            writer.owner = self
            return
        if early is not None and not held:
            early.params["parent_pk"] = args["parent_pk"]
            self._submit(put, statement=early)
            return
        self._submit(put, writes=held)

    def _early_statement(
        self, writer: Writer, config: CheckpointConfig, encoded: storage.EncodedPut,
        args: dict[str, Any], metadata: CheckpointMetadata,
    ) -> checkpoint_sql.PgPut | None:
        """PostgreSQL: the put's statement, parameters and all, built BEFORE waiting for the
        put in flight, so that only sending it lies between the previous put's outcome and
        this one's send (a superstep there costs one commit round trip, plus what the caller
        does between the two). Its parent's pk is filled in after (`_write_behind`). None for
        a run's input checkpoint (held, see `_write_behind`), for the put that carries a
        resume's held answers (its statement is another, built with them: building this one
        too cost ~10 µs a resume) and on SQLite."""
        if not _sends_ahead(writer) or metadata.source == "input":
            return None
        at = self._held_at
        if self._held and at is not None and _same_checkpoint(at, config):
            return None
        lease = self.lease
        fence = None if lease is None else self._lease_fence(lease)
        job = checkpoint_sql.put_job(
            connections[self.using], encoded, fence=fence,
            synchronous_commit=self.synchronous_commit, **args,
        )
        assert isinstance(job, checkpoint_sql.PgPut)
        return job

    def _submit(
        self, put: _HeldPut, *, writes: Sequence[tuple[str, WriteRecord]] = (),
        own_writes: Sequence[tuple[str, WriteRecord]] = (),
        statement: checkpoint_sql.PgPut | None = None,
    ) -> None:
        """Send `put` on its writer (with its parent's held pending writes, or its own), or
        `statement`, its statement already built."""
        lease = self.lease
        if lease is not None and lease.lost.is_set():
            raise LeaseLost(lease.run_id, lease.token)
        if statement is not None:
            put.writer.submit(statement, self)
        else:
            fence = None if lease is None else self._lease_fence(lease)
            connection = connections[self.using]
            job = checkpoint_sql.put_job(
                connection, put.encoded, fence=fence, writes=writes, own_writes=own_writes,
                synchronous_commit=self.synchronous_commit, **put.args,
            )
            if connection.vendor != "postgresql":
                job = checkpoint_sql.in_transaction(job)
            put.writer.submit(job, self)
        self._unflushed = self._unflushed or not self.synchronous_commit
        self._inflight = (put.writer, put.thread_id, put.checkpoint_id)

    def _put_args(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> dict[str, Any]:
        extra = metadata.extra
        user_id = extra.get("user_id")
        return {
            "written_by": sorted(metadata.writes),
            "created_at": _aware(checkpoint.ts),
            "user_id": user_id if type(user_id) is int else None,
            "reason": str(extra.get("reason") or ""),
            "parent_pk": self._pks.get((config.thread_id, config.checkpoint_id or "")),
            "checkpoint_ns": config.checkpoint_ns,
        }

    def put_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        if config.checkpoint_id is None:
            raise ValueError("put_writes needs a config naming the checkpoint the writes belong to")
        self._forget_kept_read()
        own, self._own_head = self._own_head, None  # back once the writes are made
        records = storage.encode_writes(writes, task_id)
        held_put = self._held_put
        if held_put is not None and held_put.names(config):
            # The held input checkpoint's first pending writes: one statement, one commit,
            # committed before this returns (an interrupt is reported only once it is).
            self._held_put = None
            self._submit(held_put, own_writes=[(task_id, w) for w in records])
            self._collect()
        else:
            self.flush()
            self._write_pending(config.thread_id, config.checkpoint_id, task_id, records)
        self._own_head = _added(own, config, task_id, records)

    def _remember_pk(self, thread_id: str, checkpoint_id: str, pk: int) -> None:
        if len(self._pks) >= 4096:  # a worker moves on; the newest rows are the parents
            self._pks.clear()
        self._pks[(thread_id, checkpoint_id)] = pk

    @contextmanager
    def _fenced(self) -> Iterator[checkpoint_sql.FenceArgs | None]:
        """The fence for one write: the lease folded into the write's own statement(s), or a
        `fence` callable run first in the same transaction."""
        lease = self.lease
        if lease is not None:
            fence = self._live_fence(lease)
            try:
                yield fence
            except checkpoint_sql.FenceFailed:
                raise _lost(lease) from None
            return
        if self.fence is None:
            yield None
            return
        with transaction.atomic(using=self.using):
            self.fence()
            yield None

    def delete_thread(self, thread_id: str) -> None:
        """Forget the thread's checkpoints, field values and pending writes. The `Thread` row
        itself (title, runs, events: the audit trail) stays, with no head checkpoint."""
        self._forget_kept_read()
        self._own_head = None
        self.flush()
        with transaction.atomic(using=self.using):
            db = self.using
            models.PendingWrite.objects.using(db).filter(
                checkpoint__thread__thread_id=thread_id
            ).delete()
            # The whole tree at once: the parent links need no clearing or walking
            # (`Checkpoint.parent` does not cascade).
            self._checkpoints(thread_id).delete()
            models.FieldVersion.objects.using(db).filter(thread__thread_id=thread_id).delete()
            models.Thread.objects.using(db).filter(thread_id=thread_id).update(
                head_checkpoint_id=""
            )
        self._cache.forget_thread(thread_id)
        self._pks = {key: pk for key, pk in self._pks.items() if key[0] != thread_id}

    async def _offload(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        # Django's ORM is synchronous: the async twins run it in asgiref's thread-sensitive
        # executor, where Django expects its connections to live.
        return await sync_to_async(fn)(*args, **kwargs)

    # --- helpers --------------------------------------------------------------------------

    def _checkpoints(self, thread_id: str) -> Any:
        return models.Checkpoint.objects.using(self.using).filter(thread__thread_id=thread_id)

    def _filter_extra(self, rows: Any, condition: ExtraCondition) -> Any:
        """`condition` on the JSON-safe `extra` column, as `filters` defines it. On SQLite,
        Django's key lookup reads JSON `true` and the string "true" alike, so the SQL is
        the SQLite saver's; on PostgreSQL, jsonb equality is already typed."""
        if connections[self.using].vendor == "sqlite":
            column = f'"{models.Checkpoint._meta.db_table}"."extra"'
            sql, params = sqlite_condition(column, condition, mark="%s")
            # Constant SQL text; the JSON path and the value are parameters.
            return rows.filter(RawSQL(sql, params, BooleanField()))  # noqa: S611
        # KeyTransform, not `extra__<key>`: a key named like a lookup ("contains") stays a key.
        alias = f"_extra_{condition.key}"
        return rows.alias(**{alias: KeyTransform(condition.key, "extra")}).filter(
            **{alias: condition.value}
        )

    def _fetch(
        self, thread_id: str, pairs: list[Pair], known: dict[Pair, Blob] | None = None
    ) -> dict[Pair, Blob]:
        """The wanted blobs, then (for append chains) older versions of the same fields;
        added to `known` (blobs the caller already read, not asked for again) when given.

        A version is a `FieldVersion` row or kept in the row of the checkpoint that created it
        (`Checkpoint.vals`, named by the version). Each wave reads the first, then the second
        for what is still missing (on PostgreSQL both in one query, `stored_versions`); the
        next wave asks for the bases of the append chains found, until none is missing."""
        connection = connections[self.using]
        on_pg = connection.vendor == "postgresql"
        found: dict[Pair, Blob] = {} if known is None else known
        # What the caller already holds may append to versions it does not: a listing whose
        # every version is kept in the listed rows still needs the base of its oldest row's
        # list (without it, such a read raised as if the database had been pruned).
        wanted = {pair for pair in pairs if pair not in found} | self._missing_bases(
            thread_id, found
        )
        tried: set[Pair] = set()
        first = True
        while wanted:
            tried |= wanted
            if on_pg:
                blobs = checkpoint_sql.stored_versions(
                    connection, thread_id, sorted(wanted), first=first
                )
            else:
                blobs = self._sqlite_wave(connection, thread_id, wanted, first=first)
            for b in blobs:
                found.setdefault((b.field, b.version), b)
            first = False
            wanted = self._missing_bases(thread_id, found) - tried
        return found

    def _missing_bases(self, thread_id: str, found: dict[Pair, Blob]) -> set[Pair]:
        """The versions the appends in `found` append to that neither `found` nor the value
        cache holds."""
        return {
            (b.field, b.base) for b in found.values()
            if b.kind == APPEND and b.base and (b.field, b.base) not in found
            and self._cache.value(thread_id, b.field, b.base) is None
        }

    @staticmethod
    def _sqlite_wave(
        connection: Any, thread_id: str, wanted: set[Pair], *, first: bool
    ) -> list[Blob]:
        """One wave of `_fetch` on SQLite: the `FieldVersion` rows, then the checkpoint rows
        keeping what those did not hold (a local file: two queries cost no round trip)."""
        versions = [version for _, version in wanted]
        fields = sorted({name for name, _ in wanted})
        # The first wave reads the wanted range; a chain's bases lie anywhere before it.
        low = min(versions) if first else None
        rows = checkpoint_sql.field_versions(connection, thread_id, fields, low, max(versions))
        have = {(b.field, b.version) for b in rows}
        missing = sorted({version for field, version in wanted if (field, version) not in have})
        if not missing:
            return rows
        # First wave: the rows named by the versions; then every row up to the newest missing
        # base, so a chain through inline versions takes one wave, not one per link.
        # Only the wanted fields' versions: the rest of those rows is not asked for (a long
        # list's chain goes through every row of the thread, each keeping every field).
        fields_set = set(fields)
        inline = (
            checkpoint_sql.inline_versions(connection, thread_id, missing, fields=fields_set)
            if first else checkpoint_sql.inline_versions(
                connection, thread_id, up_to=missing[-1], fields=fields_set)
        )
        return rows + inline

    def _decode(
        self, thread_id: str, records: list[CheckpointRecord], *, has_writes: bool = True,
        known: dict[Pair, Blob] | None = None, by_ids: bool = False,
    ) -> list[CheckpointTuple]:
        """The tuples of `records` (oldest first); `known`: field versions already read with
        the rows. The pending writes are read for the range of the records' ids (a listing),
        or with `by_ids` for those ids only (a few, maybe far apart)."""
        if not records:
            return []
        writes: dict[str, list[WriteRecord]] = {}
        if has_writes:
            ids = {r.checkpoint_id for r in records}
            pending = checkpoint_sql.pending_writes(
                connections[self.using], thread_id, min(ids), max(ids),
                sorted(ids) if by_ids else (),
            )
            for cid, task_id, idx, channel, data in pending:
                if cid in ids:
                    writes.setdefault(cid, []).append(WriteRecord(task_id, idx, channel, data))
        known = {} if known is None else known
        return storage.read_tuples(
            records, self._cache, lambda pairs: self._fetch(thread_id, pairs, known), writes,
            known,
        )


@dataclass(frozen=True, slots=True)
class _HeldPut:
    """A write-behind put, encoded, not yet sent."""

    writer: Writer
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    encoded: storage.EncodedPut
    args: dict[str, Any]

    def names(self, config: CheckpointConfig) -> bool:
        """Whether `config` names this put's checkpoint."""
        return (config.thread_id, config.checkpoint_id, config.checkpoint_ns) == (
            self.thread_id, self.checkpoint_id, self.checkpoint_ns
        )


@dataclass(slots=True)
class _OwnHead:
    """The root checkpoint a saver put last (its row as encoded, `meta` and `internal`
    serialized as stored) and the pending writes it added to it since, by task in the order
    a read returns them (`checkpoint_sql.put_pending_writes` replaces a task's writes, which
    then come last, as here)."""

    thread_id: str
    record: CheckpointRecord
    writes: dict[str, list[WriteRecord]] = field(default_factory=dict)

    def names(self, config: CheckpointConfig) -> bool:
        """Whether `config` is this head's thread, root namespace."""
        return config.thread_id == self.thread_id and not config.checkpoint_ns


def _added(
    own: _OwnHead | None, config: CheckpointConfig, task_id: str, records: list[WriteRecord]
) -> _OwnHead | None:
    """`own` after task `task_id`'s `records` were written to `config`'s checkpoint."""
    if own is not None and own.names(config) and config.checkpoint_id == own.record.checkpoint_id:
        own.writes.pop(task_id, None)
        own.writes[task_id] = records
    return own


def _kept_versions(checkpoint_id: str, vals: bytes | None) -> dict[Pair, Blob]:
    """The field versions kept in a checkpoint's row (`_fetch` follows the appended ones'
    chains to their bases)."""
    return {} if vals is None else unpack_inline(checkpoint_id, vals)


def _sends_ahead(writer: Writer) -> bool:
    """PostgreSQL's writer: only its put statement takes the checkpoint's own writes."""
    return isinstance(writer, SendAhead)


def _records_of(thread_id: str, rows: Any) -> tuple[list[CheckpointRecord], dict[Pair, Blob]]:
    """The records of the checkpoint rows of queryset `rows`, and the field versions the rows
    keep (`Checkpoint.vals`): they come with the rows, no query of their own (`_fetch`)."""
    known: dict[Pair, Blob] = {}
    records = []
    for row in rows.values_list(*_FIELDS):
        records.append(_record(thread_id, row[:-1]))
        if row[-1] is not None:
            unpack_inline(row[0], row[-1], known)
    return records, known


def _record(thread_id: str, row: tuple[Any, ...]) -> CheckpointRecord:
    cid, parent_id, step, source, next_, versions, internal, meta, extra = row
    return CheckpointRecord(
        thread_id=thread_id,
        checkpoint_id=cid,
        parent_id=parent_id,
        step=step,
        source=source,
        next=tuple(next_),
        versions=versions,
        internal=bytes(internal),
        meta=bytes(meta),
        extra_json=extra,
        ts=datetime.min,  # the exact ts lives in `meta`
    )


def _lost(lease: Lease) -> LeaseLost:
    """A write's fence refused `lease`: it is lost from now on."""
    lease.lost.set()
    return LeaseLost(lease.run_id, lease.token)


def _config_of(config: CheckpointConfig, checkpoint_id: str) -> CheckpointConfig:
    """`config` moved to the checkpoint a put stored: built trusted (no validation of a
    thread id `config` already carries) for the root graph, as the engine's saver does."""
    if config.checkpoint_ns:
        return config_in(config, checkpoint_id)
    return storage.trusted_config(config.thread_id, checkpoint_id)


def _same_checkpoint(a: CheckpointConfig, b: CheckpointConfig) -> bool:
    return (a.thread_id, a.checkpoint_id, a.checkpoint_ns) == (
        b.thread_id, b.checkpoint_id, b.checkpoint_ns
    )


def _no_checkpoint_for_writes(thread_id: str, checkpoint_id: str) -> CheckpointNotFound:
    return CheckpointNotFound(
        f"no checkpoint {checkpoint_id!r} in thread {thread_id!r} to attach pending writes to"
    )


def _aware(ts: datetime) -> datetime:
    # `created_at` is for people and ordering; the exact ts (naive or not) lives in `meta`.
    return ts if ts.utcoffset() is not None else ts.replace(tzinfo=UTC)
