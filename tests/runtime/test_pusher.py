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
