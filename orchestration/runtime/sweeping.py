"""The loop of a watching sweeper (`resume_stalled --watch`, `sweep_reviews --watch`): one pass
every interval, and a pass that fails does not end the process.

Under a process runner (honcho in `bin/serve`, the Procfile) a process that exits stops the
whole serving profile, and under systemd a sweeper that exits leaves stalls and overdue
reviews unnoticed until someone restarts it. So a failed pass is logged (at ERROR with its
traceback for an unexpected error; at WARNING for the database being unreachable, which
`dbfailure` treats as weather, not a fault), counted in `stepwise_sweeper_errors_total`
for `/metrics`. After an unexpected error the next pass waits longer (doubling up to
`MAX_BACKOFF_SECONDS`) so a persistent fault is not a busy loop of tracebacks; the first pass
that succeeds returns to the normal interval. The database being down keeps the interval: the
runs that stalled while it was away are healed as soon as it is back.

KeyboardInterrupt and SystemExit are not caught. SIGTERM (what honcho and systemd send) lets
the current pass finish and ends the loop at once instead of after its sleep.
A single sweep (no `--watch`) still raises: a person or a cron job is there to read it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.db import DatabaseError, close_old_connections

from orchestration.runtime import metrics
from orchestration.runtime.dbfailure import drop_broken_connection
from orchestration.runtime.signalflag import SignalFlag, pause

__all__ = ["MAX_BACKOFF_SECONDS", "Every", "backoff", "watch"]

logger = logging.getLogger(__name__)

# Long enough that a permanent fault logs a few lines an hour, short enough that a fixed one
# (a setting corrected, a row repaired) is picked up within minutes.
MAX_BACKOFF_SECONDS = 300.0


def backoff(interval: float, failures: int) -> float:
    """Seconds to wait after `failures` failed passes in a row (0: the normal interval)."""
    if failures <= 0:
        return interval
    return max(interval, min(interval * 2 ** failures, MAX_BACKOFF_SECONDS))


def watch(name: str, sweep: Callable[[], None], *, interval: float,
          stop: threading.Event | SignalFlag | None = None) -> None:
    """Run `sweep` once (interval 0: errors propagate), or every `interval` seconds until
    SIGTERM, KeyboardInterrupt or `stop` is set. `name` labels the logs and the counter."""
    if not interval:
        sweep()
        return
    stop = stop or SignalFlag()
    term = SignalFlag()  # what SIGTERM sets: see signalflag for why not `stop` itself
    with _stop_on_sigterm(term):
        failures = 0
        while not (stop.is_set() or term.is_set()):
            try:
                sweep()
                failures = 0
            except DatabaseError:
                # The database restarting: a watching sweeper waits for it, it does not die,
                # and it keeps its interval (no backoff): the runs that stalled during the
                # outage are healed as soon as the database is back.
                failures = 0
                metrics.SWEEPER_ERRORS.labels(name, "database").inc()
                logger.warning("%s: sweep failed; trying again in %ss", name, interval,
                               exc_info=True)
                drop_broken_connection()
            except Exception:  # noqa: BLE001 - the point: one bad pass must not end the loop
                failures += 1
                metrics.SWEEPER_ERRORS.labels(name, "unexpected").inc()
                logger.exception("%s: sweep failed with an unexpected error (%d in a row); "
                                 "trying again in %ss", name, failures,
                                 backoff(interval, failures))
            close_old_connections()  # a long-lived loop must not keep a broken connection
            pause(backoff(interval, failures), stop, term)
        if term.is_set():
            logger.info("%s: SIGTERM: stopped after the pass", name)



class Every:
    """A step of a watching sweeper's pass that is due on the first pass, then once
    `seconds()` (read at each pass: a setting) have gone by since it last ran (retention)."""

    def __init__(self, seconds: Callable[[], float]) -> None:
        self.seconds = seconds
        self.last: float | None = None

    def due(self) -> bool:
        """Whether the step runs in this pass; if so it counts as run now."""
        now = time.monotonic()
        if self.last is not None and now - self.last < self.seconds():
            return False
        self.last = now
        return True


class _stop_on_sigterm:  # noqa: N801 - used as a context manager
    """SIGTERM sets `stop` for the duration (main thread only: Python delivers signals
    there; elsewhere, e.g. a test's thread, the caller's `stop` is the way out)."""

    def __init__(self, stop: SignalFlag) -> None:
        self.stop = stop
        self.installed = False
        self.previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.installed = True

    def __exit__(self, *exc: object) -> None:
        if self.installed:  # None: a handler not set from Python; the default is the closest
            signal.signal(signal.SIGTERM, self.previous or signal.SIG_DFL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # nothing that takes a lock (logging does): the loop says it stopped when it notices
        self.stop.set()
