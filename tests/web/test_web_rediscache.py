"""config.rediscache: Django's Redis cache reusing one client, against the real Redis (the
PostgreSQL + Redis test pass sets REDIS_URL; without it there is nothing to talk to)."""

from __future__ import annotations

import os
import secrets
import threading

import pytest

from config.rediscache import RedisCache

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL")


def test_one_client_serves_every_call_from_every_thread():
    cache = RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": f"t{secrets.token_hex(4)}"})
    assert cache._cache.get_client() is cache._cache.get_client(write=True)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                cache.set(f"k{n}-{i}", {"n": n, "i": i}, 30)
                assert cache.get_many([f"k{n}-{i}"]) == {f"k{n}-{i}": {"n": n, "i": i}}
                assert cache.add(f"k{n}-{i}", "other", 30) is False
                cache.delete(f"k{n}-{i}")
                assert cache.get(f"k{n}-{i}") is None
        except BaseException as exc:  # reported below, from the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_values_are_stored_as_json_and_anything_else_is_refused_not_pickled():
    cache = RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": f"t{secrets.token_hex(4)}"})
    cache.set("session", {"_auth_user_id": "7", "list": [1, "a"]}, 30)
    raw = cache._cache.get_client().get(cache.make_and_validate_key("session"))
    assert raw == b'{"_auth_user_id":"7","list":[1,"a"]}'
    assert cache.get("session") == {"_auth_user_id": "7", "list": [1, "a"]}
    cache.set("n", 1, 30)
    assert cache.incr("n") == 2
    for value in ("a token", ["a", 1], -3, 2.5, True, None, "7", "", [], {}):
        cache.set("value", value, 30)
        assert cache.get("value", "missing") == value and type(cache.get("value")) is type(value)
    with pytest.raises(TypeError):
        cache.set("object", object(), 30)


def test_cache_objects_made_per_request_share_one_client_and_connection():
    """Django makes a cache object per request context under ASGI; each used to bring its own
    client, pool and TCP connection (a Redis handshake per request)."""
    location, prefix = os.environ["REDIS_URL"], f"t{secrets.token_hex(4)}"
    first = RedisCache(location, {"KEY_PREFIX": prefix})
    pool = first._cache.get_client().connection_pool
    created = pool._created_connections
    clients = set()

    def request(n: int) -> None:
        cache = RedisCache(location, {"KEY_PREFIX": prefix})  # as a new request context does
        cache.set(f"k{n}", n, 30)
        assert cache.get(f"k{n}") == n
        clients.add(id(cache._cache))

    for n in range(20):  # one request after another, each in its own thread as under ASGI
        thread = threading.Thread(target=request, args=(n,))
        thread.start()
        thread.join()
    assert clients == {id(first._cache)}
    assert pool._created_connections - created <= 1  # at most one more, not one per request
    assert RedisCache(location, {"OPTIONS": {"db": 3}})._cache is not first._cache
