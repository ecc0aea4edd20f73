"""Signal receivers: a paused run becomes review requests (or gets a re-answer delivered)."""

from __future__ import annotations

from typing import Any

from approvals.actions import deliver_reanswers, do_open_reviews
from orchestration.runtime.models import Run
from orchestration.types import Interrupt


def on_run_paused(sender: Any, run: Run, interrupts: list[Interrupt],
                  thread_current: bool = False, **kwargs: Any) -> None:
    # Sent inside the worker's transaction: these rows commit with the run's new status.
    # Only a fork run carries re-answers (`do_redecide` records them on the fork it starts):
    # other runs skip that query, one per pause. A sender that just wrote the thread's row
    # (`thread_current`) hands it over: no read of it again, one round trip per pause.
    if run.kind == Run.Kind.FORK and deliver_reanswers(run, interrupts):
        return
    do_open_reviews(run, interrupts, thread=run.thread if thread_current else None)
