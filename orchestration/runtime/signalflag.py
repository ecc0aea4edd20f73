"""A stop request that a signal handler can set without taking a lock.

Python runs a signal handler in the main thread between two bytecodes of whatever it was
doing, and runs a second handler in the middle of the first. `threading.Event.set()` takes the
Event's lock: when the interrupted code holds it (inside `Event.wait()`, or inside the first
handler's `set()` when a second signal lands, as honcho and bin/serve-worker send two), the
handler waits for a lock its own thread holds, and the process hangs until SIGKILL. An ops
trial saw a sweeper do that on stop; a stand-alone repro hung 3 times in 300. Setting an
attribute takes no lock, so this flag is safe to set from a handler, and its `wait` polls.
"""

from __future__ import annotations

import time
from typing import Protocol

# How soon a waiting loop notices the flag: the sleep in between is resumed after a handler
# runs (PEP 475), so the poll is what bounds the delay.
POLL_SECONDS = 0.2


class SignalFlag:
    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, back within `POLL_SECONDS` of `set()`; whether set."""
        pause(timeout, self)
        return self._set


class _Flag(Protocol):
    def is_set(self) -> bool: ...


def pause(seconds: float, *flags: _Flag) -> None:
    """Sleep `seconds`, back within `POLL_SECONDS` of any of `flags` being set (a
    `SignalFlag`, or a `threading.Event` another thread sets: `is_set` takes no lock)."""
    deadline = time.monotonic() + seconds
    while not any(flag.is_set() for flag in flags) and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, POLL_SECONDS))
