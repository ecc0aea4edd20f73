"""`InMemoryCheckpointSaver`: checkpoints in process memory (lost when the process exits).

It stores exactly what the SQLite and Django savers store (serialized records and blobs,
through the shared storage core), so values are copies that later mutation by a node can
never change, and an unserializable value fails here just as it would in production.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestration.checkpoint import storage
from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    as_checkpoint_config,
    metadata_matches,
    validate_filter,
)
from orchestration.checkpoint.filters import record_metadata
from orchestration.checkpoint.namespaces import config_in, rehome
from orchestration.checkpoint.storage import Blob, CheckpointRecord, Pair, WriteRecord
from orchestration.errors import CheckpointNotFound


@dataclass
class _Thread:
    records: dict[str, CheckpointRecord] = field(default_factory=dict)
    blobs: dict[Pair, Blob] = field(default_factory=dict)
    # checkpoint id -> task id -> writes; re-inserting a task moves it last (write order)
    writes: dict[str, dict[str, list[WriteRecord]]] = field(default_factory=dict)


class InMemoryCheckpointSaver(BaseCheckpointSaver):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        # (thread id, checkpoint namespace) -> its checkpoints; "" is the root graph's
        self._threads: dict[tuple[str, str], _Thread] = {}
        self._cache = storage.ValueCache()

    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        with self._lock:
            thread = self._threads.get((config.thread_id, config.checkpoint_ns))
            if thread is None or not thread.records:
                return None
            wanted = config.checkpoint_id or max(thread.records)
            record = thread.records.get(wanted)
            if record is None:
                return None
            return rehome(self._decode(thread, [record]), config)[0]

    def list(
        self,
        config: CheckpointConfig | None,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[CheckpointTuple]:
        if config is None:
            return self.list_all(limit, before=before, filter=filter)
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        wanted = validate_filter(filter)
        with self._lock:
            thread = self._threads.get((config.thread_id, config.checkpoint_ns))
            if thread is None:
                return []
            ids = sorted(thread.records)
            if before is not None and before.checkpoint_id is not None:
                ids = [i for i in ids if i < before.checkpoint_id]
            records = [thread.records[i] for i in ids]
            if wanted:
                records = [r for r in records if metadata_matches(record_metadata(r), wanted)]
            if limit is not None:
                records = records[-limit:] if limit > 0 else []
            return rehome(self._decode(thread, records), config)

    def thread_configs(self) -> list[CheckpointConfig]:
        with self._lock:
            keys = sorted(key for key, thread in self._threads.items() if thread.records)
        return [CheckpointConfig(thread_id, checkpoint_ns=ns) for thread_id, ns in keys]

    def put(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        encoded = storage.encode_checkpoint(
            config.thread_id, config.checkpoint_id, checkpoint, metadata, self._cache
        )
        with self._lock:
            thread = self._threads.setdefault((config.thread_id, config.checkpoint_ns), _Thread())
            for blob in encoded.blobs:
                thread.blobs.setdefault((blob.field, blob.version), blob)
            thread.records[checkpoint.id] = encoded.record
            storage.remember_put(self._cache, encoded)
        return config_in(config, checkpoint.id)

    def put_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if type(config) is not CheckpointConfig:
            config = as_checkpoint_config(config)  # a LangGraph config dict
        if config.checkpoint_id is None:
            raise ValueError("put_writes needs a config naming the checkpoint the writes belong to")
        records = storage.encode_writes(writes, task_id)
        with self._lock:
            thread = self._threads.get((config.thread_id, config.checkpoint_ns))
            if thread is None or config.checkpoint_id not in thread.records:
                raise CheckpointNotFound(
                    f"no checkpoint {config.checkpoint_id!r} in thread {config.thread_id!r} "
                    "to attach pending writes to"
                )
            by_task = thread.writes.setdefault(config.checkpoint_id, {})
            by_task.pop(task_id, None)
            by_task[task_id] = records

    def delete_thread(self, thread_id: str) -> None:
        with self._lock:
            for key in [key for key in self._threads if key[0] == thread_id]:
                del self._threads[key]
            self._cache.forget_thread(thread_id)

    def _decode(self, thread: _Thread, records: list[CheckpointRecord]) -> list[CheckpointTuple]:
        writes = {
            cid: [w for ws in thread.writes.get(cid, {}).values() for w in ws]
            for cid in (r.checkpoint_id for r in records)
        }
        # Every blob is in memory already: `known` serves every chain, nothing is fetched.
        return storage.read_tuples(
            records, self._cache, lambda _: thread.blobs, writes, thread.blobs
        )

