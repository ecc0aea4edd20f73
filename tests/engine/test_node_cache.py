"""Node caching beyond the LangGraph comparison (`tests/compat/programs/node_cache.py`): what
is never cached, a broken cache, the SQLite cache across processes' lifetimes, refusals."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import uuid
from pathlib import Path
from typing import Any, TypedDict

import pytest

from orchestration import START, CachePolicy, Command, GraphValidationError, StateGraph, interrupt
from orchestration.cache import BaseCache, InMemoryCache, RedisCache, SqliteCache
from orchestration.checkpoint import InMemorySaver


class State(TypedDict, total=False):
    x: int
    y: int
    obj: Any


def graph(node: Any, cache: BaseCache | None, saver: Any = None, ttl: int | None = None) -> Any:
    builder = StateGraph(State).add_node("node", node, cache_policy=CachePolicy(ttl=ttl))
    return builder.add_edge(START, "node").compile(cache=cache, checkpointer=saver)


def test_failures_and_pauses_are_not_cached_and_answers_always_run() -> None:
    calls: list[str] = []

    def flaky(state: State) -> dict[str, Any]:
        calls.append("flaky")
        if len(calls) == 1:
            raise ConnectionError("down")
        return {"y": 1}

    cached = graph(flaky, InMemoryCache())
    with pytest.raises(ConnectionError):
        cached.invoke({"x": 1})
    assert cached.invoke({"x": 1}) == {"x": 1, "y": 1}  # the failure was not stored
    assert cached.invoke({"x": 1}) == {"x": 1, "y": 1}
    assert calls == ["flaky", "flaky"]

    asked: list[Any] = []

    def ask(state: State) -> dict[str, Any]:
        asked.append(state["x"])
        return {"y": interrupt("ok?")}

    saver = InMemorySaver()
    asks = graph(ask, InMemoryCache(), saver)
    config = {"configurable": {"thread_id": "a"}}
    assert "__interrupt__" in asks.invoke({"x": 1}, config)
    assert asks.invoke(Command(resume=5), config)["y"] == 5
    other = {"configurable": {"thread_id": "b"}}
    # the answered pass was stored: a new thread with the same input is answered from it
    assert asks.invoke({"x": 1}, other) == {"x": 1, "y": 5}
    assert asked == [1, 1]


class Broken(BaseCache):
    def get(self, keys: Any) -> Any:
        raise OSError("cache server gone")

    def set(self, pairs: Any) -> None:
        raise OSError("cache server gone")

    def clear(self, namespaces: Any = None) -> None:
        raise OSError("cache server gone")


def test_a_broken_cache_is_logged_and_the_node_runs(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def node(state: State) -> dict[str, Any]:
        calls.append(state["x"])
        return {"y": 2}

    with caplog.at_level(logging.WARNING, logger="orchestration.pregel.caching"):
        assert graph(node, Broken()).invoke({"x": 3}) == {"x": 3, "y": 2}
    assert calls == [3]
    assert "could not be read" in caplog.text and "could not be written" in caplog.text


def test_the_sqlite_cache_outlives_its_object_and_is_private(tmp_path: Path) -> None:
    calls: list[int] = []

    def node(state: State) -> dict[str, Any]:
        calls.append(state["x"])
        return {"y": state["x"] * 2}

    path = tmp_path / "cache.sqlite3"
    first = SqliteCache(path=path)
    assert graph(node, first).invoke({"x": 4}) == {"x": 4, "y": 8}
    first.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = SqliteCache(path=path)  # a restarted worker on the same file
    assert graph(node, again).invoke({"x": 4}) == {"x": 4, "y": 8}
    assert calls == [4]
    graph(node, again).clear_cache(["node"])
    assert graph(node, again).invoke({"x": 4}) == {"x": 4, "y": 8}
    assert calls == [4, 4]
    with pytest.raises(ValueError, match="InMemoryCache"):
        SqliteCache(path=":memory:")


def test_async_runs_use_the_cache() -> None:
    calls: list[int] = []

    async def node(state: State) -> dict[str, Any]:
        calls.append(state["x"])
        return {"y": 1}

    cached = graph(node, InMemoryCache())
    for _ in range(2):
        assert asyncio.run(cached.ainvoke({"x": 9})) == {"x": 9, "y": 1}
    asyncio.run(cached.aclear_cache())
    asyncio.run(cached.ainvoke({"x": 9}))
    assert calls == [9, 9]


def test_refusals_say_what_to_do() -> None:
    def node(state: State) -> dict[str, Any]:
        return {"y": 1}

    with pytest.raises(TypeError, match="key_func"):
        graph(node, InMemoryCache()).invoke({"x": 1, "obj": object()})
    with pytest.raises(ValueError, match="no cache.*cache=InMemoryCache"):
        graph(node, None).clear_cache()
    with pytest.raises(ValueError, match=r"no such node\(s\) \['nope'\]"):
        graph(node, InMemoryCache()).clear_cache(["nope"])
    builder = StateGraph(State).add_node("node", node, cache_policy={"ttl": 5})
    with pytest.raises(GraphValidationError, match="cache_policy must be a CachePolicy"):
        builder.add_edge(START, "node").compile()


def _redis() -> Any:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/5")
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("needs Redis on 127.0.0.1:6379 (or REDIS_URL)")
    return client


def test_the_redis_cache_is_shared_expires_and_clears_by_node() -> None:
    client = _redis()
    prefix = f"stepwise-test:{uuid.uuid4().hex}:"
    calls: list[int] = []

    def node(state: State) -> dict[str, Any]:
        calls.append(state["x"])
        return {"y": state["x"] + 1}

    try:
        one, two = RedisCache(client, prefix=prefix), RedisCache(client, prefix=prefix)
        assert graph(node, one, ttl=30).invoke({"x": 1}) == {"x": 1, "y": 2}
        assert graph(node, two, ttl=30).invoke({"x": 1}) == {"x": 1, "y": 2}  # another worker
        assert calls == [1]
        [name] = list(client.scan_iter(match=f"{prefix}*"))
        assert 0 < client.ttl(name) <= 30
        graph(node, two).clear_cache(["node"])
        assert list(client.scan_iter(match=f"{prefix}*")) == []
        graph(node, one).invoke({"x": 1})
        assert calls == [1, 1]
    finally:
        RedisCache(client, prefix=prefix).clear()
    assert list(client.scan_iter(match=f"{prefix}*")) == []
