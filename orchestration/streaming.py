"""Chunks that reach a stream while a superstep runs: what nodes write with
`get_stream_writer()` (mode `custom`) and, with `stream(..., subgraphs=True)`, what subgraphs
run inside a node stream (their `updates`, `values` and `custom` chunks).

Nodes run on pool threads (sync) or on the event loop (async), while the driver that yields
to the caller waits for the superstep. So chunks go through a thread-safe queue that the
driver drains as they arrive (`drain`, `wait`), and never wait for the superstep to end.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable, Collection
from typing import Any

from orchestration.checkpoint.namespaces import ns_tuple
from orchestration.pregel.chat_stream import Seen

# `checkpoints`, `tasks` and `debug` chunks are built by the loop (`pregel/streams.py`).
STREAM_MODES = ("values", "updates", "custom", "messages", "checkpoints", "tasks", "debug")

# (checkpoint namespace of the writer, mode, chunk)
Item = tuple[str, str, Any]


class Sink:
    """Where one `stream`/`astream` call's in-step chunks go."""

    __slots__ = ("modes", "subgraphs", "wants_custom", "callback", "seen", "_queue", "_loop",
                 "_event")

    def __init__(
        self,
        modes: Collection[str],
        subgraphs: bool,
        callback: Callable[[tuple[str, ...], Any], None] | None = None,
    ) -> None:
        self.modes = frozenset(modes)
        self.subgraphs = subgraphs
        self.wants_custom = "custom" in self.modes or callback is not None
        # Called with (namespace, chunk) in the writing node's own thread, instead of queueing:
        # for a caller that records chunks where the node runs (the Django worker, whose
        # database connection belongs to the thread that runs the node).
        self.callback = callback
        # the chat messages this stream has sent (`stream_mode="messages"`: each goes once)
        self.seen = Seen() if "messages" in self.modes else None
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def emit(self, ns: str, mode: str, chunk: Any) -> None:
        """Called from any thread. What a subgraph emits (its `updates`, `values` and its
        nodes' `custom` chunks) reaches the caller only with `subgraphs=True`, as in
        LangGraph; a `callback` sink (the Django worker's) gets every custom chunk."""
        if self.callback is not None:
            if mode == "custom":
                self.callback(ns_tuple(ns), chunk)
            return
        if mode not in self.modes or (ns and not self.subgraphs):
            return
        self._queue.put((ns, mode, chunk))
        loop, event = self._loop, self._event
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    def emit_done(self, mark: Any, outcome: Any) -> None:
        """The driver's end mark with the run's outcome (`drivers._drive_in_background`)."""
        self._queue.put(("", mark, outcome))

    def drain(self) -> list[Item]:
        items: list[Item] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def get(self) -> Item:
        return self._queue.get()

    def bind_loop(self) -> asyncio.Event:
        """For `astream`: wake the running loop when a chunk arrives from another thread."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        return self._event


def check_modes(stream_mode: Any) -> tuple[frozenset[str], bool]:
    """(modes, single): `single` when one mode was given as a string (chunks are yielded
    bare, not as `(mode, chunk)`)."""
    modes = (stream_mode,) if isinstance(stream_mode, str) else tuple(stream_mode)
    if not modes:
        raise ValueError(f"stream_mode must name at least one of {list(STREAM_MODES)}")
    for mode in modes:
        if mode not in STREAM_MODES:
            raise ValueError(
                f"stream_mode must be one of {list(STREAM_MODES)} or a list of them, got {mode!r}"
            )
    return frozenset(modes), isinstance(stream_mode, str)
