"""`InMemoryStore`: the store in process memory (values kept as serde bytes, so what a node
reads back is a copy, and an unstorable value fails here just as it would in SQLite)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from orchestration.store.base import BaseStore, Row, under


class InMemoryStore(BaseStore):
    def __init__(self, *, index: Mapping[str, Any] | None = None) -> None:
        """`index={"embed": fn, "dims": n, "fields": ["text"]}`: semantic `search(query=)`
        (orchestration.store.semantic), as LangGraph's."""
        self._use_index(index)
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], Row] = {}  # insertion order; an update keeps its place

    def _read(self, ns: str, key: str) -> Row | None:
        with self._lock:
            return self._rows.get((ns, key))

    def _write(self, ns: str, key: str, data: bytes, at: datetime) -> None:
        with self._lock:
            old = self._rows.get((ns, key))
            self._rows[(ns, key)] = (ns, key, data, old[3] if old else at, at)

    def _remove(self, ns: str, key: str) -> None:
        with self._lock:
            self._rows.pop((ns, key), None)

    def _rows_under(self, prefix: str) -> Iterable[Row]:
        with self._lock:
            return [row for (ns, _), row in self._rows.items() if under(ns, prefix)]

    def _all_namespaces(self) -> Iterable[str]:
        with self._lock:
            return {ns for ns, _ in self._rows}
