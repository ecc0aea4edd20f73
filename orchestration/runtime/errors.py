"""Every error the Django runtime raises, in one tree (the engine's own are in
`orchestration.errors`).

    StepwiseRuntimeError                 `.thread_id`, `.run_id`, `.graph_name` (None if n/a)
    ├── GraphRegistryError               a STEPWISE_GRAPHS entry is unusable
    │   ├── UnknownGraph                 no graph of that name; `.known` lists the names
    │   │                                (also a RunError and a LookupError)
    │   └── GraphImportError             the entry does not import to a compiled graph;
    │                                    `.target` (also an ImportError)
    ├── RunError                         a run action was refused; nothing was written
    │   ├── InvalidRunInput              the input cannot be queued (also a ValueError)
    │   ├── ThreadExists                 a thread with that id already exists
    │   ├── ThreadHasActiveRun           the thread already has a queued/running/stalled run
    │   ├── ThreadNotResumable           the thread is done or cancelled
    │   ├── UnknownCheckpoint            no such checkpoint in the thread; `.checkpoint_id`
    │   │                                (also a LookupError)
    │   ├── RunNotRetryable              only the latest failed run can be retried; `.status`
    │   ├── RunNotCancellable            the run already ended; `.status`
    │   └── RunNotStalled                only a stalled run can be resumed; `.status`
    ├── InputError                       a run's stored input cannot be encoded or read
    │                                    back (also a ValueError)
    ├── LeaseLost                        this worker no longer holds the run; `.token`
    ├── WorkerLost                       recorded on a dead worker's task row, never raised:
    │                                    its run went on under another task (or needs ops)
    └── AuditTrailProtected              deleting would remove append-only audit rows
                                         (also Django's ProtectedError); `.protected_objects`

Each message says what happened, where (thread, run, graph) and what to do next; the same
context is on the attributes, so callers never parse messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import ProtectedError


class StepwiseRuntimeError(Exception):
    """Base class of every error the Django runtime raises."""

    def __init__(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        run_id: int | None = None,
        graph_name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        self.run_id = run_id
        self.graph_name = graph_name


# ---------------------------------------------------------------- graphs


class GraphRegistryError(StepwiseRuntimeError):
    """A graph name or its STEPWISE_GRAPHS entry cannot be turned into a compiled graph."""


class RunError(StepwiseRuntimeError):
    """A run action was refused; the message says why and what to do instead."""


class UnknownGraph(GraphRegistryError, RunError, LookupError):
    """No graph of that name is registered. A `RunError` too: starting or resuming a thread
    of an unregistered graph is a refused run action."""

    def __init__(self, graph_name: str, known: Iterable[str]) -> None:
        self.known = tuple(sorted(known))
        names = ", ".join(self.known) or "none"
        super().__init__(
            f"no graph named {graph_name!r} in settings.STEPWISE_GRAPHS (known: {names}); "
            "add it as name -> 'module:attribute'",
            graph_name=graph_name,
        )


class GraphImportError(GraphRegistryError, ImportError):
    """The entry `target` ("module:attribute") does not import to a compiled graph."""

    def __init__(self, message: str, *, graph_name: str, target: str) -> None:
        super().__init__(message, graph_name=graph_name)
        self.target = target


# ---------------------------------------------------------------- run actions


class InvalidRunInput(RunError, ValueError):
    pass


class ThreadExists(RunError):
    pass


class ThreadHasActiveRun(RunError):
    pass


class ThreadNotResumable(RunError):
    pass


class UnknownCheckpoint(RunError, LookupError):
    def __init__(self, message: str, *, thread_id: str, checkpoint_id: str) -> None:
        super().__init__(message, thread_id=thread_id)
        self.checkpoint_id = checkpoint_id


class _RunInWrongStatus(RunError):
    """The run's status (`.status`) does not allow the action."""

    def __init__(self, message: str, *, run_id: int, thread_id: str | None, status: str) -> None:
        super().__init__(message, run_id=run_id, thread_id=thread_id)
        self.status = status


class RunNotRetryable(_RunInWrongStatus):
    pass


class RunNotCancellable(_RunInWrongStatus):
    pass


class RunNotStalled(_RunInWrongStatus):
    pass


# ---------------------------------------------------------------- workers


class InputError(StepwiseRuntimeError, ValueError):
    """A run input (`inputs.RunInput`) that cannot be stored or read back; the message says
    which part and why. Run actions turn it into `InvalidRunInput` before anything is written."""


class LeaseLost(StepwiseRuntimeError):  # noqa: N818 - it names the situation, like TimeoutError
    """This worker no longer holds the run: it was resumed elsewhere, cancelled or finished."""

    def __init__(self, run_id: int, token: str, *, thread_id: str | None = None) -> None:
        super().__init__(
            f"run {run_id}: this worker's lease {token[:8]} is gone (the run was resumed by "
            "another worker, cancelled or finished); nothing was written. No action needed.",
            run_id=run_id,
            thread_id=thread_id,
        )
        self.token = token


class WorkerLost(StepwiseRuntimeError):  # noqa: N818 - the name is what the task table shows
    """Recorded (not raised) on the task row of a run's execution whose worker was lost
    (SIGKILLed, its machine gone) by `runs.finish_lost_task`: the run itself went on under
    another task, or the stall policy gave up on it."""


# ---------------------------------------------------------------- audit trail


class AuditTrailProtected(StepwiseRuntimeError, ProtectedError):
    """Deleting the thread would delete rows of the append-only audit trail (events,
    decisions). Django's `ProtectedError` too, so code and the admin that handle that keep
    working."""

    def __init__(self, thread_id: str, protected_objects: Sequence[Any] | Any) -> None:
        kinds = sorted({type(obj).__name__ for obj in protected_objects})
        message = (
            f"thread {thread_id} cannot be deleted: its audit trail ({', '.join(kinds)} rows) "
            "is append-only and would go with it. Cancel the thread instead; it stays "
            "readable with its history."
        )
        # Both bases' __init__ only store attributes (ProtectedError's would also put the
        # objects into `args`, and so into the message): set them here.
        Exception.__init__(self, message)
        self.thread_id, self.run_id, self.graph_name = thread_id, None, None
        self.protected_objects = protected_objects
