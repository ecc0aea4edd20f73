"""Helpers for the saver tests: build savers, call them sync or async, write checkpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestration.checkpoint import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    InMemoryCheckpointSaver,
)
from orchestration.checkpoint.base import new_checkpoint_id

SAVERS = ["memory", "sqlite", "django", "django-write-behind"]


def make_saver(kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> BaseCheckpointSaver:
    if kind == "memory":
        return InMemoryCheckpointSaver()
    if kind == "sqlite":
        from orchestration.checkpoint import SqliteSaver

        saver = SqliteSaver(tmp_path / "checkpoints.db")
        request.addfinalizer(saver.close)
        return saver
    # The database comes from the django_db mark conftest.py adds to these tests.
    from asgiref.sync import sync_to_async
    from django.db import connections

    from orchestration.runtime.write_behind import close_writers
    from orchestration.savers import DjangoCheckpointSaver

    # The write-behind thread's private connection goes too, for the same reason.
    request.addfinalizer(close_writers)
    # The async twins use asgiref's executor thread; close its connection so the test
    # database can be dropped at the end (PostgreSQL refuses while a session is open).
    request.addfinalizer(lambda: asyncio.run(sync_to_async(connections.close_all)()))
    if kind == "django-write-behind":  # as a worker runs it on PostgreSQL
        return DjangoCheckpointSaver(durability="async", synchronous_commit=False)
    return DjangoCheckpointSaver()


class SyncOps:
    """The saver port called through its sync methods."""

    def __init__(self, saver: BaseCheckpointSaver) -> None:
        self.saver = saver

    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        return self.saver.get_tuple(config)

    def list(self, config: CheckpointConfig, limit: int | None = None, **kw: Any) -> list:
        return self.saver.list(config, limit, **kw)

    def put(self, config: CheckpointConfig, cp: Checkpoint, md: CheckpointMetadata) -> Any:
        return self.saver.put(config, cp, md)

    def put_writes(self, config: CheckpointConfig, writes: Any, task_id: str) -> None:
        self.saver.put_writes(config, writes, task_id)

    def delete_thread(self, thread_id: str) -> None:
        self.saver.delete_thread(thread_id)


class AsyncOps(SyncOps):
    """The same port through the async twins, each awaited on a fresh event loop."""

    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        return asyncio.run(self.saver.aget_tuple(config))

    def list(self, config: CheckpointConfig, limit: int | None = None, **kw: Any) -> list:
        return asyncio.run(self.saver.alist(config, limit, **kw))

    def put(self, config: CheckpointConfig, cp: Checkpoint, md: CheckpointMetadata) -> Any:
        return asyncio.run(self.saver.aput(config, cp, md))

    def put_writes(self, config: CheckpointConfig, writes: Any, task_id: str) -> None:
        asyncio.run(self.saver.aput_writes(config, writes, task_id))

    def delete_thread(self, thread_id: str) -> None:
        asyncio.run(self.saver.adelete_thread(thread_id))


@dataclass
class Writer:
    """Builds checkpoints the way the engine does: a changed field is versioned by the new
    checkpoint, an unchanged one keeps its parent's version."""

    ops: SyncOps

    def put(
        self,
        thread_id: str,
        values: Mapping[str, Any],
        parent: CheckpointTuple | None = None,
        *,
        source: str = "loop",
        step: int | None = None,
        next: tuple[str, ...] = (),
        internal: Mapping[str, Any] | None = None,
        writes: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        ns: str = "",
    ) -> CheckpointTuple:
        cid = new_checkpoint_id()
        old_values = parent.checkpoint.values if parent else {}
        old_versions = parent.checkpoint.versions if parent else {}
        versions = {
            name: old_versions[name]
            if name in old_values and old_values[name] == value and name in old_versions
            else cid
            for name, value in values.items()
        }
        checkpoint = Checkpoint(
            id=cid,
            ts=datetime.now(UTC),
            values=dict(values),
            versions=versions,
            next=next,
            internal=dict(internal or {}),
        )
        metadata = CheckpointMetadata(
            source=source,  # type: ignore[arg-type]
            step=step if step is not None else (parent.metadata.step + 1 if parent else 0),
            writes=dict(writes or {}),
            extra=dict(extra or {}),
        )
        parent_id = parent.checkpoint.id if parent else None
        config = self.ops.put(
            CheckpointConfig(thread_id, parent_id, checkpoint_ns=ns), checkpoint, metadata
        )
        stored = self.ops.get_tuple(config)
        assert stored is not None
        return stored


def cold_copy(saver: BaseCheckpointSaver, request: pytest.FixtureRequest) -> BaseCheckpointSaver:
    """Another saver on the same storage with nothing cached, so reads go to storage."""
    from orchestration.checkpoint.storage import ValueCache

    if isinstance(saver, InMemoryCheckpointSaver):
        saver._cache = ValueCache()
        return saver
    kind = type(saver).__name__
    if kind == "SqliteSaver":
        from orchestration.checkpoint import SqliteSaver

        other = SqliteSaver(saver.path)  # type: ignore[attr-defined]
        request.addfinalizer(other.close)
        return other
    return type(saver)()


STORES = ["memory", "sqlite", "django"]


def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    if kind == "memory":
        from orchestration.store import InMemoryStore

        return InMemoryStore()
    if kind == "sqlite":
        from orchestration.store import SqliteStore

        store = SqliteStore(tmp_path / "store.db")
        request.addfinalizer(store.close)
        return store
    from asgiref.sync import sync_to_async
    from django.db import connections

    from orchestration.savers import DjangoStore

    request.addfinalizer(lambda: asyncio.run(sync_to_async(connections.close_all)()))
    return DjangoStore()


class StoreOps:
    """The store's API called through its sync methods."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def put(self, *args: Any, **kw: Any) -> None:
        self.store.put(*args, **kw)

    def get(self, *args: Any) -> Any:
        return self.store.get(*args)

    def delete(self, *args: Any) -> None:
        self.store.delete(*args)

    def search(self, *args: Any, **kw: Any) -> list:
        return self.store.search(*args, **kw)

    def list_namespaces(self, *args: Any, **kw: Any) -> list:
        return self.store.list_namespaces(*args, **kw)


class AsyncStoreOps(StoreOps):
    """The same through the `a`-prefixed twins."""

    def put(self, *args: Any, **kw: Any) -> None:
        asyncio.run(self.store.aput(*args, **kw))

    def get(self, *args: Any) -> Any:
        return asyncio.run(self.store.aget(*args))

    def delete(self, *args: Any) -> None:
        asyncio.run(self.store.adelete(*args))

    def search(self, *args: Any, **kw: Any) -> list:
        return asyncio.run(self.store.asearch(*args, **kw))

    def list_namespaces(self, *args: Any, **kw: Any) -> list:
        return asyncio.run(self.store.alist_namespaces(*args, **kw))
