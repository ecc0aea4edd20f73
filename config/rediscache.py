"""Django's Redis cache with one redis-py client per process instead of one per call and per
request, storing JSON instead of pickle.

Django's `RedisCacheClient.get_client` builds a new `redis.Redis` for every cache operation;
redis-py 8 registers its ~170 response callbacks in each new client, ~0.1-0.3 ms of CPU, and a
page makes two or three cache calls (its session, its user). A `redis.Redis` is safe to share
between threads: each command borrows a connection from the pool and returns it.

Django's cache handler also makes a new cache object for every request context under ASGI
(`caches` is context-local), and with it a new client, a new connection pool and so a new TCP
connection to Redis per request, whose handshake asks `importlib.metadata` for redis-py's
version by scanning `sys.path`: about a tenth of a served request's CPU (bench/load's py-spy
profile). The client and its pool therefore live in the process, keyed by their settings, and
every cache object of the same settings uses them.

Django's Redis cache pickles every value that is not an int, and unpickling runs code: whoever
can write to Redis could then run code in every server process. Our values (sessions, the auth
cache's entries) are JSON data, so `JSONSerializer` stores them as JSON, and a value that is
not JSON data is refused when it is stored (TypeError), never silently pickled.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils.functional import cached_property


def unreachable(error: BaseException) -> bool:
    """Whether `error` says Redis cannot be reached now (down, restarting, a timeout): what a
    reader of a cache may treat as a miss and read the database instead. The sessions and
    the signed-in user's cache do (config.cached_sessions, approvals.authcache): with Redis
    down every request failed with a 500, the HTTP API's token requests included, although
    everything they needed was in the database (an ops trial). Writes that invalidate
    (a permission change, a logout) still fail loudly."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # no redis-py: no Redis cache either
        return False
    return isinstance(error, RedisConnectionError | RedisTimeoutError)


def log_unreachable(logger: logging.Logger, what: str, error: BaseException) -> None:
    """One warning per process and minute while Redis is away, not one per request."""
    global _warned_at
    now = time.monotonic()
    if now - _warned_at >= 60:
        _warned_at = now
        logger.warning("Redis unreachable (%s): %s read from the database instead", error, what)


_warned_at = -60.0


class JSONSerializer:
    """Django's RedisSerializer contract (ints stay ints, so `incr` works) with JSON for the
    rest instead of pickle."""

    def dumps(self, obj: Any) -> int | bytes:
        if type(obj) is int:
            return obj
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(self, data: bytes) -> Any:
        # an object, list or string (sessions, the auth cache's entries and tokens: every read
        # of a request) is JSON for sure; trying int() on it first raised and caught an error
        if data[:1] in _JSON_STARTS:
            return json.loads(data)
        try:
            return int(data)
        except ValueError:
            return json.loads(data)


_JSON_STARTS = (b"{", b"[", b'"')


class ReusedClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:  # two threads racing here build one client too many, both work
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(
                    self._servers[index], **self._pool_options
                )
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


_clients: dict[str, ReusedClient] = {}
_clients_lock = threading.Lock()


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusedClient

    @cached_property
    def _cache(self) -> ReusedClient:
        # redis-py's pools notice a fork and reconnect in the child, so sharing is fork-safe
        key = json.dumps([self._servers, self._options], sort_keys=True, default=repr)
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = ReusedClient(self._servers, **self._options)
        return client
