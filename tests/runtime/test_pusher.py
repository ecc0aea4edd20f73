"""Events pushed to a Redis channel layer from synchronous code, through the process's push
loop (orchestration.runtime.pusher): delivered, in order, without blocking the caller."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest
from channels.layers import InMemoryChannelLayer

from orchestration.runtime.pusher import pusher_for

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/5"


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not redis_up(), reason="needs Redis at 127.0.0.1:6379")


async def test_pushes_reach_a_group_member_in_order() -> None:
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=f"test-{uuid.uuid4().hex[:8]}")
    group = "thread-push-test"
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    pusher = pusher_for(layer)
    assert pusher is not None
    # called from a thread without an event loop, as a worker or a sync view calls it
    await asyncio.to_thread(lambda: [
        pusher.push([group], {"type": "stepwise.event", "event_id": n}) for n in range(20)
    ])
    received = [
        (await asyncio.wait_for(layer.receive(channel), timeout=10))["event_id"]
        for _ in range(20)
    ]
    assert received == list(range(20))
    # (no layer.flush(): it would close the push loop's connections from this loop)
    await layer.group_discard(group, channel)


def test_the_in_memory_layer_is_called_directly() -> None:
    # its queues belong to the caller's event loop: no push loop for it
    assert pusher_for(InMemoryChannelLayer()) is None


async def _members(layer: object, groups: dict[str, list[str]]) -> None:
    for group, channels in groups.items():
        for channel in channels:
            await layer.group_add(group, channel)  # type: ignore[attr-defined]


async def test_a_batch_delivers_what_group_send_delivers() -> None:
    """`Batch.send` (two pipelined round trips) against channels_redis's own `group_send`
    called once per group and message: two layers with the same groups (one channel in
    two groups, a group of two, a group nobody is in), the same messages; every channel
    receives the same messages in the same order."""
    from channels_redis.core import RedisChannelLayer

    from orchestration.runtime.pusher import Batch, batches

    received: list[dict[str, list[int]]] = []
    for sender in ("group_send", "batch"):
        layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=f"test-{uuid.uuid4().hex[:8]}")
        assert batches(layer)
        one, two, three = [await layer.new_channel() for _ in range(3)]
        groups = {"inbox": [one, two], "ops": [two], "thread-a": [three], "thread-b": []}
        await _members(layer, groups)
        messages = [
            (["inbox", "ops", "thread-a"], {"type": "stepwise.event", "event_id": n})
            if n % 3 else (["thread-b", "thread-a"], {"type": "stepwise.event", "event_id": n})
            for n in range(30)
        ]
        if sender == "batch":
            batch = Batch(layer)
            await batch.send(messages[:7])  # a batch, then the next one
            await batch.send(messages[7:])
        else:
            for target, message in messages:
                for group in target:
                    await layer.group_send(group, message)
        counts = {channel: sum(1 for target, _ in messages for group in target
                               if channel in groups[group]) for channel in (one, two, three)}
        got = {}
        for name, channel in (("one", one), ("two", two), ("three", three)):
            got[name] = [
                (await asyncio.wait_for(layer.receive(channel), timeout=10))["event_id"]
                for _ in range(counts[channel])
            ]
        received.append(got)
        for group, channels in groups.items():
            for channel in channels:
                await layer.group_discard(group, channel)
        await layer.flush()
    assert received[0] == received[1]
    assert received[1]["two"] == [n for n in range(30) if n % 3 for _ in range(2)]
    assert received[1]["three"] == list(range(30))


async def test_scores_strictly_increase() -> None:
    # two pushes within the clock's resolution must not tie (equal scores pop in the order
    # of the serialized bytes, not the order sent)
    from channels_redis.core import RedisChannelLayer

    from orchestration.runtime.pusher import Batch

    batch = Batch(RedisChannelLayer(hosts=[REDIS_URL]))
    scores = [batch.score() for _ in range(1000)]
    assert all(a < b for a, b in zip(scores, scores[1:], strict=False))


def test_a_sharded_layer_is_sent_group_by_group() -> None:
    from channels_redis.core import RedisChannelLayer

    from orchestration.runtime.pusher import batches

    assert not batches(RedisChannelLayer(hosts=[REDIS_URL, REDIS_URL]))
