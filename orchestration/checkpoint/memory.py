"""`InMemoryCheckpointSaver`: checkpoints in process memory (lost when the process exits)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    metadata_matches,
    validate_filter,
)


@dataclass
class _Entry:
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    parent_id: str | None
    writes: dict[str, list[PendingWrite]] = field(default_factory=dict)


class InMemoryCheckpointSaver(BaseCheckpointSaver):
    # Interim implementation: deep copies. To be replaced by the shared serialized storage core.

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._threads: dict[str, dict[str, _Entry]] = {}

    def _tuple(self, thread_id: str, entry: _Entry) -> CheckpointTuple:
        writes = tuple(w for ws in entry.writes.values() for w in ws)
        return CheckpointTuple(
            config=CheckpointConfig(thread_id, entry.checkpoint.id),
            checkpoint=copy.deepcopy(entry.checkpoint),
            metadata=copy.deepcopy(entry.metadata),
            parent_config=CheckpointConfig(thread_id, entry.parent_id) if entry.parent_id else None,
            pending_writes=copy.deepcopy(writes),
        )

    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        with self._lock:
            entries = self._threads.get(config.thread_id)
            if not entries:
                return None
            if config.checkpoint_id is None:
                entry = entries[max(entries)]
            else:
                found = entries.get(config.checkpoint_id)
                if found is None:
                    return None
                entry = found
            return self._tuple(config.thread_id, entry)

    def list(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[CheckpointTuple]:
        wanted = validate_filter(filter)
        with self._lock:
            entries = self._threads.get(config.thread_id, {})
            ids = sorted(entries)
            if before is not None and before.checkpoint_id is not None:
                ids = [i for i in ids if i < before.checkpoint_id]
            ids = [i for i in ids if metadata_matches(entries[i].metadata, wanted)]
            if limit is not None:
                ids = ids[-limit:] if limit > 0 else []
            return [self._tuple(config.thread_id, entries[i]) for i in ids]

    def put(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        with self._lock:
            self._threads.setdefault(config.thread_id, {})[checkpoint.id] = _Entry(
                copy.deepcopy(checkpoint), copy.deepcopy(metadata), config.checkpoint_id
            )
        return CheckpointConfig(config.thread_id, checkpoint.id)

    def put_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if config.checkpoint_id is None:
            raise ValueError("put_writes needs a config naming the checkpoint the writes belong to")
        with self._lock:
            entry = self._threads.get(config.thread_id, {}).get(config.checkpoint_id)
            if entry is None:
                raise LookupError(f"no checkpoint {config.checkpoint_id!r} in thread {config.thread_id!r}")
            entry.writes[task_id] = [
                PendingWrite(task_id, channel, copy.deepcopy(value)) for channel, value in writes
            ]

    def delete_thread(self, thread_id: str) -> None:
        with self._lock:
            self._threads.pop(thread_id, None)
