"""Pushing events to a Redis channel layer from synchronous code without blocking it.

`async_to_sync(layer.group_send)` from a worker or a request thread starts a thread and an
event loop for every call, and waits for Redis: under load it was half of a worker's publish
cost and a good part of a decision request's. Here one daemon thread per process runs one
event loop; `push` hands it the message and returns at once, and the loop sends messages in
the order they were handed over. Only for channels_redis layers, which are made to be used
from any loop; the in-memory layer (tests, development) keeps the direct call, whose queues
belong to the caller's loop.

The loop sends what has queued up since its last send together (`Batch`): channels_redis's
`group_send` costs two Redis round trips per group even when nobody listens (drop expired
members, read the members) and two more per group that has some (drop expired messages, the
Lua script that adds the message to each member's channel). An event goes to three groups
(inbox, ops, its thread's page): six to ten round trips, each a socket write and read on this
loop, and most of a worker's publish CPU. A batch does the same commands, in the same order
per group, in two pipelined round trips: the members of all its groups, then every message
to every group that has members. With more than one Redis host (sharded layers) each group
is still sent by `group_send`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

# Messages waiting to be sent; past this many (Redis down or far behind) new ones are
# dropped: a push is a courtesy, the Event row is the record and pages poll it.
MAX_BACKLOG = 10_000
# At most this many events in one batch: a backlog after a Redis outage goes out in pieces.
MAX_BATCH = 200

# channels_redis 4.x `group_send`'s script, unchanged: add the message to each channel under
# its capacity, the channel's key expiring with the layer's expiry; returns how many channels
# were over capacity.
GROUP_SEND_LUA = """
    local over_capacity = 0
    local current_time = ARGV[#ARGV - 1]
    local expiry = ARGV[#ARGV]
    for i=1,#KEYS do
        if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
            redis.call('ZADD', KEYS[i], current_time, ARGV[i])
            redis.call('EXPIRE', KEYS[i], expiry)
        else
            over_capacity = over_capacity + 1
        end
    end
    return over_capacity
"""

Message = tuple[list[str], dict[str, Any]]


def batches(layer: Any) -> bool:
    """Whether `layer` can be sent to in batches: one Redis host, and the channels_redis
    internals `Batch` uses (4.x)."""
    return getattr(layer, "ring_size", 0) == 1 and all(
        hasattr(layer, name) for name in (
            "_group_key", "_map_channel_keys_to_connection", "connection", "group_expiry",
            "expiry", "require_valid_group_name",
        )
    )


class Batch:
    """channels_redis's `group_send` for several (groups, message) at once on a one-host
    layer: for each group the same commands as `group_send` (expired members dropped,
    members read; for a group with members, expired messages dropped and the script run),
    pipelined in two round trips instead of two to four per group.

    Each channel's messages are ordered by their score (the time they were sent;
    channels_redis pops the lowest first): scores here strictly increase within the
    process, so a page gets its events in the order they were pushed, as with one
    `group_send` after another."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.last_score = 0.0

    def score(self) -> float:
        now = time.time()
        self.last_score = now if now > self.last_score else math.nextafter(self.last_score,
                                                                            math.inf)
        return self.last_score

    async def send(self, messages: list[Message]) -> None:
        layer = self.layer
        sends = [(group, message) for groups, message in messages for group in groups
                 if self._valid(group, message)]
        groups = list(dict.fromkeys(group for group, _ in sends))
        if not groups:
            return
        connection = layer.connection(0)
        pipe = connection.pipeline(transaction=False)
        expired = int(time.time()) - layer.group_expiry
        for group in groups:
            key = layer._group_key(group)
            pipe.zremrangebyscore(key, min=0, max=expired)
            pipe.zrange(key, 0, -1)
        replies = await pipe.execute()
        members = {group: [name.decode("utf8") for name in replies[2 * i + 1]]
                   for i, group in enumerate(groups)}
        pipe = connection.pipeline(transaction=False)
        evals: list[tuple[int, str, int]] = []  # (reply index, group, members)
        commands = 0
        for group, message in sends:
            names = members[group]
            if not names:
                continue
            by_connection, key_message, key_capacity = layer._map_channel_keys_to_connection(
                names, message)
            keys = by_connection[0]
            stale = int(time.time()) - int(layer.expiry)
            for key in keys:
                pipe.zremrangebyscore(key, min=0, max=stale)
            args = [key_message[key] for key in keys] + [key_capacity[key] for key in keys]
            pipe.eval(GROUP_SEND_LUA, len(keys), *keys, *args, self.score(), layer.expiry)
            commands += len(keys) + 1
            evals.append((commands - 1, group, len(names)))
        if not evals:
            return
        replies = await pipe.execute()
        for index, group, count in evals:
            if replies[index] > 0:  # as group_send says it
                logger.info("%s of %s channels over capacity in group %s", replies[index],
                            count, group)

    def _valid(self, group: str, message: dict[str, Any]) -> bool:
        try:
            return bool(self.layer.require_valid_group_name(group))
        except Exception:  # noqa: BLE001 - as group_send raising for this group alone
            logger.warning("could not push event %s to %s", message, group, exc_info=True)
            return False


class Pusher:
    """The process's push loop. `push` appends to `pending` and wakes the loop only when it is
    not already due to look (`woken`): the events one commit announces, or those pushed while
    a batch is on the wire, cost one wake-up (a write to the loop's self-pipe, and a switch
    to its thread) instead of one each, and go out together."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.batch = Batch(layer) if batches(layer) else None
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.pending: collections.deque[Message] = collections.deque()
        self.lock = threading.Lock()
        self.woken = False
        self.wake: asyncio.Event | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name="stepwise-pusher",
                                       daemon=True)
        self.thread.start()
        ready.wait(timeout=5)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.wake = asyncio.Event()
        ready.set()
        self.loop.run_until_complete(self._drain())

    def _take(self) -> list[Message]:
        """Up to MAX_BATCH pending messages, oldest first; the next push wakes the loop again
        unless some are left (then the loop looks again by itself)."""
        with self.lock:
            messages = [self.pending.popleft()
                        for _ in range(min(MAX_BATCH, len(self.pending)))]
            self.woken = bool(self.pending)
        return messages

    async def _drain(self) -> None:
        assert self.wake is not None
        while True:
            await self.wake.wait()
            self.wake.clear()
            messages = self._take()
            if self.woken:  # more than one batch waiting
                self.wake.set()
            if messages:
                await self._send(messages)

    async def _send(self, messages: list[Message]) -> None:
        if self.batch is not None:
            try:
                await self.batch.send(messages)
            except Exception:  # noqa: BLE001 - see MAX_BACKLOG: never fail the sender
                logger.warning("could not push %d event(s), the first %s", len(messages),
                               messages[0][1], exc_info=True)
            return
        for groups, message in messages:
            for group in groups:
                try:
                    await self.layer.group_send(group, message)
                except Exception:  # noqa: BLE001 - see MAX_BACKLOG
                    logger.warning("could not push event %s to %s", message, group,
                                   exc_info=True)

    def push(self, groups: list[str], message: dict[str, Any]) -> None:
        with self.lock:
            if len(self.pending) >= MAX_BACKLOG:
                full = True
            else:
                full = False
                self.pending.append((groups, message))
                wake, self.woken = not self.woken, True
        if full:
            logger.warning("channel layer backlog full: event %s not pushed", message)
        elif wake:
            assert self.wake is not None
            self.loop.call_soon_threadsafe(self.wake.set)


_pusher: Pusher | None = None
_lock = threading.Lock()


def pusher_for(layer: Any) -> Pusher | None:
    """The process's pusher for `layer`, or None when `layer` must be called directly."""
    global _pusher
    if type(layer).__module__.split(".")[0] != "channels_redis":
        return None
    with _lock:
        # a forked child (uvicorn's process manager forks) must not use its parent's thread
        if _pusher is None or _pusher.pid != os.getpid() or _pusher.layer is not layer:
            _pusher = Pusher(layer)
        return _pusher
