"""Node caches (LangGraph's `langgraph.cache.memory`, `.sqlite` and `.base` ->
`orchestration.cache`): `compile(cache=InMemoryCache())` with `add_node(...,
cache_policy=CachePolicy(ttl=...))` lets a node's task whose input the cache has seen take
the writes stored then instead of running (`pregel/caching.py`).

A cache maps (namespace, key) to a value with an expiry. Values are stored encoded by the
checkpoint serializer (no pickle), so what a cache returns is a copy a node may change.
`InMemoryCache` lives as long as the process; `SqliteCache(path)` in one file (created 0600)
that several processes, or a restarted worker, share; `RedisCache(redis_client)` in Redis,
shared by the workers of every machine (entries expire by Redis's own TTL).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestration.checkpoint import serde

__all__ = ["BaseCache", "FullKey", "InMemoryCache", "Namespace", "RedisCache", "SqliteCache"]

Namespace = tuple[str, ...]
FullKey = tuple[Namespace, str]


class BaseCache:
    """What the engine asks of a cache; the async methods default to the sync ones."""

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        """The unexpired values of those of `keys` the cache holds."""
        raise NotImplementedError

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        """Store each value with its time to live in seconds (None: for ever)."""
        raise NotImplementedError

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Forget the values of `namespaces` (every value when None)."""
        raise NotImplementedError

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        return self.get(keys)

    async def aset(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        self.set(pairs)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        self.clear(namespaces)


def _expiry(ttl: int | None, now: float) -> float | None:
    return None if ttl is None else now + ttl


class InMemoryCache(BaseCache):
    def __init__(self) -> None:
        self._values: dict[Namespace, dict[str, tuple[bytes, float | None]]] = {}
        self._lock = threading.Lock()

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        now = time.time()
        found: dict[FullKey, Any] = {}
        with self._lock:
            for namespace, key in keys:
                entry = self._values.get(tuple(namespace), {}).get(key)
                if entry is None:
                    continue
                data, expires = entry
                if expires is not None and expires <= now:
                    del self._values[tuple(namespace)][key]
                    continue
                found[(tuple(namespace), key)] = data
        return {k: serde.loads(data) for k, data in found.items()}

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        now = time.time()
        encoded = {
            (tuple(ns), key): (serde.dumps(value, where="a cached value"), _expiry(ttl, now))
            for (ns, key), (value, ttl) in pairs.items()
        }
        with self._lock:
            for (namespace, key), entry in encoded.items():
                self._values.setdefault(namespace, {})[key] = entry

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        with self._lock:
            if namespaces is None:
                self._values.clear()
            else:
                for namespace in namespaces:
                    self._values.pop(tuple(namespace), None)


_SCHEMA = """CREATE TABLE IF NOT EXISTS cache (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    expires REAL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID"""
_SEPARATOR = "\x1f"  # joins a namespace's parts into one column (never in a node's name)


class SqliteCache(BaseCache):
    """A cache in one SQLite file (WAL, created readable by its owner only)."""

    def __init__(self, *, path: str | os.PathLike[str], busy_timeout: float = 30.0) -> None:
        if str(path) == ":memory:":
            raise ValueError("SqliteCache(path=...) needs a file path; use InMemoryCache")
        self.path = Path(path)
        if not self.path.exists() or self.path.stat().st_size == 0:
            for name in (str(self.path), f"{self.path}-wal", f"{self.path}-shm"):
                os.close(os.open(name, os.O_CREAT | os.O_RDWR, 0o600))
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout, check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        now = time.time()
        found: dict[FullKey, Any] = {}
        with self._lock:
            for namespace, key in keys:
                row = self._conn.execute(
                    "SELECT value, expires FROM cache WHERE namespace = ? AND key = ?",
                    (_SEPARATOR.join(namespace), key),
                ).fetchone()
                if row is not None and (row[1] is None or row[1] > now):
                    found[(tuple(namespace), key)] = row[0]
        return {k: serde.loads(data) for k, data in found.items()}

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        now = time.time()
        rows = [
            (_SEPARATOR.join(ns), key, serde.dumps(value, where="a cached value"),
             _expiry(ttl, now))
            for (ns, key), (value, ttl) in pairs.items()
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO cache (namespace, key, value, expires) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
                    "expires = excluded.expires",
                    rows,
                )
                self._conn.execute("DELETE FROM cache WHERE expires <= ?", (now,))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        with self._lock:
            if namespaces is None:
                self._conn.execute("DELETE FROM cache")
            else:
                self._conn.executemany(
                    "DELETE FROM cache WHERE namespace = ?",
                    [(_SEPARATOR.join(ns),) for ns in namespaces],
                )

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class RedisCache(BaseCache):
    """A cache in Redis (LangGraph's `RedisCache(redis, prefix=...)`): `redis` is a client
    of redis-py (`redis.Redis.from_url(...)`), keys are `prefix` + namespace + key."""

    def __init__(self, redis: Any, *, prefix: str = "stepwise:cache:") -> None:
        self.redis = redis
        self.prefix = prefix

    def _name(self, namespace: Namespace, key: str) -> str:
        return f"{self.prefix}{':'.join(namespace)}:{key}"

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        if not keys:
            return {}
        wanted = [(tuple(ns), key) for ns, key in keys]
        found = self.redis.mget([self._name(ns, key) for ns, key in wanted])
        return {k: serde.loads(data) for k, data in zip(wanted, found, strict=True) if data}

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for (ns, key), (value, ttl) in pairs.items():
                data = serde.dumps(value, where="a cached value")
                pipe.set(self._name(tuple(ns), key), data, ex=ttl if ttl else None)
            pipe.execute()

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        patterns = [f"{_glob_escaped(self.prefix)}*"] if namespaces is None else [
            f"{_glob_escaped(self._name(tuple(ns), ''))}*" for ns in namespaces
        ]
        for pattern in patterns:
            batch = list(self.redis.scan_iter(match=pattern, count=500))
            while batch:
                self.redis.delete(*batch[:500])
                batch = batch[500:]


def _glob_escaped(text: str) -> str:
    """`text` matched literally by a Redis SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
