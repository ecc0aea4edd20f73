"""`ValueCache`: what a saver wrote or read recently, so a put on top of it stores appends
only and a resume reads its checkpoint without a query."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence


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
                key = (thread_id, field, version)
                old = stored.pop(key, None)
                if old is not None:
                    self._size -= len(old)
                stored[key] = data
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
            drop = known.pop
            for thread_id, checkpoint_id, versions in items:
                key = (thread_id, checkpoint_id)
                # Popped and set again rather than `move_to_end`: a key not yet known (most of
                # a listing's, on a saver that did not write them) then costs one lookup more
                # instead of a reordering.
                drop(key, None)
                known[key] = versions
            while len(known) > self._max_checkpoints:
                known.popitem(last=False)

    def forget_thread(self, thread_id: str) -> None:
        with self._lock:
            for key in [k for k in self._values if k[0] == thread_id]:
                self._size -= len(self._values.pop(key))
            for key in [k for k in self._versions if k[0] == thread_id]:
                del self._versions[key]
