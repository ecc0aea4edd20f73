"""Pushing events to a Redis channel layer from synchronous code without blocking it.

`async_to_sync(layer.group_send)` from a worker or a request thread starts a thread and an
event loop for every call, and waits for Redis: under load it was half of a worker's publish
cost and a good part of a decision request's. Here one daemon thread per process runs one
event loop; `push` hands it the message and returns at once, and the loop sends messages in
the order they were handed over. Only for channels_redis layers, which are made to be used
from any loop; the in-memory layer (tests, development) keeps the direct call, whose queues
belong to the caller's loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

logger = logging.getLogger(__name__)

# Messages waiting to be sent; past this many (Redis down or far behind) new ones are
# dropped: a push is a courtesy, the Event row is the record and pages poll it.
MAX_BACKLOG = 10_000


class Pusher:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[tuple[list[str], dict[str, Any]]] | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name="stepwise-pusher",
                                       daemon=True)
        self.thread.start()
        ready.wait(timeout=5)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue(MAX_BACKLOG)
        ready.set()
        self.loop.run_until_complete(self._drain())

    async def _drain(self) -> None:
        assert self.queue is not None
        while True:
            groups, message = await self.queue.get()
            for group in groups:
                try:
                    await self.layer.group_send(group, message)
                except Exception:  # noqa: BLE001 - see MAX_BACKLOG: never fail the sender
                    logger.warning("could not push event %s to %s", message, group, exc_info=True)

    def push(self, groups: list[str], message: dict[str, Any]) -> None:
        def put() -> None:
            assert self.queue is not None
            try:
                self.queue.put_nowait((groups, message))
            except asyncio.QueueFull:
                logger.warning("channel layer backlog full: event %s not pushed", message)

        self.loop.call_soon_threadsafe(put)


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
