"""A worker asked to stop (SIGTERM) hands its run back at the next superstep boundary.

`stepwise_worker` sets `STOPPING` from its signal handler; `tasks.RunExecution` checks it after
every superstep (each one is already checkpointed) and, when set, gives the run back: the run
leaves `running` under this worker's lease, is queued again at once, and the next worker
continues from the checkpoint just written. Without this a stopping worker either finished
the whole run (unbounded: a run may work for minutes) or died at the service manager's kill
timeout and left the run to wait for its lease to expire.
"""

from __future__ import annotations

from orchestration.runtime.signalflag import SignalFlag

# set from the signal handler: not a threading.Event, whose lock a handler may deadlock on
STOPPING = SignalFlag()


class HandBack(Exception):  # noqa: N818 - a request to stop, not an error
    """Raised between supersteps when the worker is shutting down."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id}: worker shutting down, run handed back")
