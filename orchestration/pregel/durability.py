"""`durability=` of a call (LangGraph 1.x's): when its checkpoints reach the saver.

"sync" and "async" store every superstep's checkpoint before the next superstep runs (a
saver that writes behind, the Django one, still commits before the call returns): in
LangGraph "async" overlaps that write with the next step, which shows nowhere but in timing.
"exit" stores only what the call ends with: `ExitSaver` holds each checkpoint the call makes
until the call returns, pauses or fails, then stores the last one, its parent being the last
checkpoint that was stored. The thread's history then lacks the steps in between, as
LangGraph's does; a crash mid-call loses the call's work (it restarts from the checkpoint it
started from). A node declared with side effects still gets its superstep stored first
(`flush_durable`): the world is never acted on for work a crash could lose.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from orchestration.checkpoint import serde
from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
)

Durability = Literal["sync", "async", "exit"]
DURABILITIES: tuple[str, ...] = ("sync", "async", "exit")


def check_durability(durability: str | None) -> None:
    if durability is not None and durability not in DURABILITIES:
        raise ValueError(
            f"durability={durability!r} is not one of {list(DURABILITIES)}: 'sync' or 'async' "
            "store every superstep (the default), 'exit' only what the call ends with"
        )


@dataclass
class _Held:
    """A checkpoint made by the call and not stored yet: its values as stored bytes (checked
    storable when made, and never changed by what the call does to them later)."""

    parent: CheckpointConfig
    checkpoint: Checkpoint
    values: bytes
    metadata: CheckpointMetadata
    writes: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)


class ExitSaver(BaseCheckpointSaver):
    """`durability="exit"`: the call's saver, holding its checkpoints until `flush` (the end
    of the call) stores the newest one of each namespace. Reads of a held checkpoint are
    answered from it; writes to a stored checkpoint go through at once."""

    def __init__(self, saver: BaseCheckpointSaver) -> None:
        self.saver = saver
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], _Held] = {}
        self._ends_call = True

    def nested(self) -> ExitSaver:
        """The same holder for a subgraph run inside the call: the subgraph's end (its
        driver's `flush`) is not the call's, so it stores nothing."""
        view = ExitSaver(self.saver)
        view._lock, view._held, view._ends_call = self._lock, self._held, False
        return view

    # -- held checkpoints

    def _hold(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        key = (config.thread_id, config.checkpoint_ns)
        values = serde.dumps(checkpoint.values, where="checkpoint values")
        with self._lock:
            before = self._held.get(key)
            # Its parent is held too (the call's previous superstep): the stored parent is
            # that one's. Pending writes of a held checkpoint die with it, as its superstep
            # committed.
            chained = before is not None and before.checkpoint.id == config.checkpoint_id
            parent = before.parent if before is not None and chained else config
            self._held[key] = _Held(parent, checkpoint, values, metadata)
        return CheckpointConfig(config.thread_id, checkpoint.id, config.checkpoint_ns)

    def _held_for(self, config: CheckpointConfig) -> _Held | None:
        held = self._held.get((config.thread_id, config.checkpoint_ns))
        if held is None or config.checkpoint_id not in (None, held.checkpoint.id):
            return None
        return held

    def _tuple(self, config: CheckpointConfig, held: _Held) -> CheckpointTuple:
        cid = held.checkpoint.id
        writes = tuple(
            PendingWrite(task_id, channel, value)
            for task_id, items in held.writes.items() for channel, value in items
        )
        return CheckpointTuple(
            CheckpointConfig(config.thread_id, cid, config.checkpoint_ns),
            replace(held.checkpoint, values=serde.loads(held.values)),
            held.metadata,
            held.parent if held.parent.checkpoint_id else None,
            writes,
        )

    def _held_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> bool:
        with self._lock:
            held = self._held_for(config) if config.checkpoint_id else None
            if held is None:
                return False
            # a task's writes replace its earlier ones, as a saver's do
            held.writes[task_id] = [(c, serde.loads(serde.dumps(v))) for c, v in writes]
            return True

    def _take(self) -> list[_Held]:
        with self._lock:
            held = list(self._held.values())
            self._held.clear()  # shared with `nested` views
        return held

    def _store(self, held: _Held) -> None:
        checkpoint = replace(held.checkpoint, values=serde.loads(held.values))
        stored = self.saver.put(held.parent, checkpoint, held.metadata)
        for task_id, writes in held.writes.items():
            self.saver.put_writes(stored, writes, task_id)

    async def _astore(self, held: _Held) -> None:
        checkpoint = replace(held.checkpoint, values=serde.loads(held.values))
        stored = await self.saver.aput(held.parent, checkpoint, held.metadata)
        for task_id, writes in held.writes.items():
            await self.saver.aput_writes(stored, writes, task_id)

    # -- the saver's port

    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        with self._lock:
            held = self._held_for(config)
            if held is not None:
                return self._tuple(config, held)
        return self.saver.get_tuple(config)

    async def aget_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        with self._lock:
            held = self._held_for(config)
            if held is not None:
                return self._tuple(config, held)
        return await self.saver.aget_tuple(config)

    def put(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        return self._hold(config, checkpoint, metadata)

    async def aput(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        return self._hold(config, checkpoint, metadata)

    def put_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if not self._held_writes(config, writes, task_id):
            self.saver.put_writes(config, writes, task_id)

    def put_writes_deferred(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if not self._held_writes(config, writes, task_id):
            self.saver.put_writes_deferred(config, writes, task_id)

    async def aput_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if not self._held_writes(config, writes, task_id):
            await self.saver.aput_writes(config, writes, task_id)

    async def aput_writes_deferred(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if not self._held_writes(config, writes, task_id):
            await self.saver.aput_writes_deferred(config, writes, task_id)

    def flush(self) -> None:
        """The call ends: store the newest checkpoint of each namespace, then flush."""
        if self._ends_call:
            self._store_all()
            self.saver.flush()

    async def aflush(self) -> None:
        if self._ends_call:
            await self._astore_all()
            await self.saver.aflush()

    def flush_durable(self) -> None:
        self._store_all()
        self.saver.flush_durable()

    async def aflush_durable(self) -> None:
        await self._astore_all()
        await self.saver.aflush_durable()

    def _store_all(self) -> None:
        for held in self._take():
            self._store(held)

    async def _astore_all(self) -> None:
        for held in self._take():
            await self._astore(held)

    def list(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> builtins.list[CheckpointTuple]:
        return self.saver.list(config, limit, before=before, filter=filter)

    def delete_thread(self, thread_id: str) -> None:
        self.saver.delete_thread(thread_id)
