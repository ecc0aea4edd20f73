"""Start, resume, fork, retry, cancel and un-stall runs: the web app's only way to make a
thread move.

Each action changes rows inside `transaction.atomic`, records an `Event` (who, why), and
enqueues `orchestration.runtime.tasks.execute_run` with `transaction.on_commit`, so a worker never
sees a run whose row is not committed. Which Tasks backend carries the job is configuration.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orchestration.checkpoint import serde
from orchestration.runtime import registry
from orchestration.runtime.errors import (
    InvalidRunInput,
    RunError,
    RunNotCancellable,
    RunNotRetryable,
    RunNotStalled,
    ThreadExists,
    ThreadHasActiveRun,
    ThreadNotResumable,
    UnknownCheckpoint,
    UnknownGraph,
)
from orchestration.runtime.events import publish
from orchestration.runtime.leases import revoke_expired_lease
from orchestration.runtime.models import Checkpoint, Run, Thread
from orchestration.runtime.signals import run_stalled

# The errors were defined here before the runtime had one error tree: still importable here.
__all__ = [
    "InvalidRunInput", "RunError", "RunNotCancellable", "RunNotRetryable", "RunNotStalled",
    "ThreadExists", "ThreadHasActiveRun", "ThreadNotResumable", "UnknownCheckpoint",
    "UnknownGraph", "cancel_run", "declare_stalled", "decode_input", "fork_thread",
    "resume_stalled", "resume_thread", "retry_run", "run_inline", "start_thread",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# Actions


def start_thread(
    graph_name: str, input: Any, *, user: Any, title: str = "", thread_id: str | None = None
) -> Run:
    """Create a thread of `graph_name` and queue its first run with `input`."""
    _check_graph(graph_name)
    payload = _dump({"type": "value", "value": input})
    with _one_active_run(thread_id or "new thread"), transaction.atomic():
        thread = Thread.objects.create(
            thread_id=thread_id or uuid.uuid4().hex,
            graph_name=graph_name,
            title=title,
            status=Thread.Status.RUNNING,
            started_by=_user_or_none(user),
        )
        run = _create_run(thread, Run.Kind.START, user=user, reason="", input=payload)
    return run


def resume_thread(thread: Thread, command: Any | None, *, user: Any, reason: str = "") -> Run:
    """Queue a run continuing `thread` from its latest checkpoint: `command` answers its
    interrupts (`Command(resume=...)`); `None` re-runs whatever is pending."""
    if thread.status in (Thread.Status.DONE, Thread.Status.CANCELLED):
        raise ThreadNotResumable(
            f"thread {thread.thread_id} is {thread.get_status_display().lower()}: there is "
            "nothing left to resume. Fork it from a checkpoint to run it again.",
            thread_id=thread.thread_id, graph_name=thread.graph_name,
        )
    payload = _dump(_command_envelope(command))
    with _one_active_run(thread.thread_id), transaction.atomic():
        run = _create_run(
            thread, Run.Kind.RESUME, user=user, reason=reason, input=payload,
            previous=_latest_run(thread),
        )
    return run


def fork_thread(
    thread: Thread,
    checkpoint_id: str,
    values: dict[str, Any] | None,
    *,
    user: Any,
    reason: str,
    as_node: str | None = None,
) -> Run:
    """Queue a run that branches `thread` at `checkpoint_id`, applying `values` first (as if
    written by `as_node`). Earlier checkpoints are never changed."""
    if not Checkpoint.objects.filter(thread=thread, checkpoint_id=checkpoint_id).exists():
        raise UnknownCheckpoint(
            f"thread {thread.thread_id} has no checkpoint {checkpoint_id!r}; pick one from "
            "the thread's history",
            thread_id=thread.thread_id, checkpoint_id=checkpoint_id,
        )
    payload = _dump({"type": "fork", "values": dict(values or {})})
    with _one_active_run(thread.thread_id), transaction.atomic():
        run = _create_run(
            thread, Run.Kind.FORK, user=user, reason=reason, input=payload,
            previous=_latest_run(thread), from_checkpoint_id=checkpoint_id,
            as_node=as_node or "",
        )
    return run


def retry_run(run: Run, *, user: Any, reason: str) -> Run:
    """Queue a new run of a failed run's thread: it re-runs only the task that failed."""
    if run.status != Run.Status.FAILED:
        hint = " (resume stalled runs instead)" if run.status == Run.Status.STALLED else ""
        raise RunNotRetryable(
            f"run {run.pk} is {run.get_status_display().lower()}, only failed runs can be "
            f"retried{hint}",
            run_id=run.pk, thread_id=run.thread.thread_id, status=run.status,
        )
    latest = _latest_run(run.thread)
    if latest is not None and latest.pk != run.pk:
        raise RunNotRetryable(
            f"run {run.pk} is not the latest run of thread {run.thread.thread_id} "
            f"(run {latest.pk} is); retry that one or fork the thread",
            run_id=run.pk, thread_id=run.thread.thread_id, status=run.status,
        )
    with _one_active_run(run.thread.thread_id), transaction.atomic():
        new = _create_run(
            run.thread, Run.Kind.RETRY, user=user, reason=reason, input=_dump({"type": "none"}),
            previous=run,
        )
    return new


def cancel_run(run: Run, *, user: Any, reason: str) -> Run:
    """Stop a queued, running, stalled or waiting run. A running worker notices at its next
    checkpoint write (its fence fails) and writes nothing more."""
    cancellable = [*Run.ACTIVE, Run.Status.WAITING]
    now = timezone.now()
    with transaction.atomic():
        changed = Run.objects.filter(pk=run.pk, status__in=cancellable).update(
            status=Run.Status.CANCELLED, lease_token="", lease_expires_at=None, finished_at=now
        )
        if not changed:
            run.refresh_from_db(fields=["status"])
            raise RunNotCancellable(
                f"run {run.pk} is already {run.get_status_display().lower()}; nothing to cancel",
                run_id=run.pk, thread_id=run.thread.thread_id, status=run.status,
            )
        Thread.objects.filter(pk=run.thread_id).update(
            status=Thread.Status.CANCELLED, updated_at=now
        )
        run.refresh_from_db()
        publish("run_cancelled", run=run, actor=_user_or_none(user), reason=reason)
    return run


def resume_stalled(run: Run, *, user: Any = None, reason: str) -> Run:
    """Re-queue a run whose worker stopped renewing its lease. A running run whose lease has
    expired is first marked stalled; the next worker continues from its last checkpoint."""
    with transaction.atomic():
        if run.status == Run.Status.RUNNING:
            declare_stalled(run, user=user, reason=reason)
        run.refresh_from_db()
        if run.status != Run.Status.STALLED:
            raise RunNotStalled(
                f"run {run.pk} is {run.get_status_display().lower()}, not stalled"
                + (" (its lease has not expired yet)" if run.status == Run.Status.RUNNING else ""),
                run_id=run.pk, thread_id=run.thread.thread_id, status=run.status,
            )
        publish("run_requeued", run=run, actor=_user_or_none(user), reason=reason)
        _enqueue(run)
    return run


def declare_stalled(run: Run, *, user: Any = None, reason: str, older_than: float = 0.0) -> bool:
    """Running -> stalled if its lease expired (`leases.revoke_expired_lease`), and say so: the
    thread becomes stalled, a `run_stalled` event is recorded and the signal sent. False if
    the lease had not expired (or the run ended) meanwhile."""
    with transaction.atomic():
        if not revoke_expired_lease(run.pk, older_than=older_than):
            return False
        Thread.objects.filter(pk=run.thread_id).update(
            status=Thread.Status.STALLED, updated_at=timezone.now()
        )
        run.refresh_from_db()
        publish(
            "run_stalled", run=run, actor=_user_or_none(user), reason=reason,
            data={"worker": run.worker, "attempts": run.attempts},
        )
        run_stalled.send(sender=Run, run=run)
    return True


# ---------------------------------------------------------------------------------------
# Queueing


_inline = threading.local()


@contextmanager
def run_inline() -> Iterator[None]:
    """Execute runs queued inside this block in this process, right after their commit,
    instead of enqueueing them (seed data, scripts, tests that need no worker)."""
    previous = getattr(_inline, "on", False)
    _inline.on = True
    try:
        yield
    finally:
        _inline.on = previous


def _enqueue(run: Run) -> None:
    run_id = run.pk
    if getattr(_inline, "on", False):
        transaction.on_commit(lambda: _execute_now(run_id))
    else:
        transaction.on_commit(lambda: _send_to_worker(run_id))


def _execute_now(run_id: int) -> None:
    from orchestration.runtime.tasks import execute_run

    execute_run.call(run_id)


def _send_to_worker(run_id: int) -> None:
    from orchestration.runtime.tasks import execute_run

    result = execute_run.enqueue(run_id)
    Run.objects.filter(pk=run_id).update(task_result_id=str(result.id)[:64])


# ---------------------------------------------------------------------------------------
# Helpers


def _create_run(thread: Thread, kind: str, *, user: Any, reason: str, input: bytes,
                previous: Run | None = None, **fields: Any) -> Run:
    if Run.objects.filter(thread=thread, status__in=Run.ACTIVE).exists():
        raise IntegrityError("run_one_active_per_thread")
    actor = _user_or_none(user)
    run = Run.objects.create(
        thread=thread, kind=kind, input=input, requested_by=actor, reason=reason,
        previous=previous, **fields,
    )
    Run.objects.close_paused(thread.pk)
    Thread.objects.filter(pk=thread.pk).update(
        status=Thread.Status.RUNNING, updated_at=timezone.now()
    )
    thread.status = Thread.Status.RUNNING
    publish("run_queued", run=run, thread=thread, actor=actor, reason=reason,
            data={"kind": kind})
    _enqueue(run)
    return run


@contextmanager
def _one_active_run(thread_label: str) -> Iterator[None]:
    """Turn the database's one-active-run-per-thread refusal into a clear error. The
    pre-check in `_create_run` gives the common case; the constraint closes the race."""
    try:
        yield
    except IntegrityError as exc:
        text = str(exc)
        if "run_one_active_per_thread" in text or "orchestration_run" in text:
            raise ThreadHasActiveRun(
                f"thread {thread_label} already has a queued, running or stalled run; wait "
                "for it, cancel it, or resume it if it is stalled",
                thread_id=thread_label,
            ) from exc
        if "thread_id" in text:
            raise ThreadExists(
                f"a thread named {thread_label!r} already exists; pick another id or open it",
                thread_id=thread_label,
            ) from exc
        raise


def _latest_run(thread: Thread) -> Run | None:
    return Run.objects.filter(thread=thread).order_by("-created_at", "-pk").first()


def _check_graph(graph_name: str) -> None:
    registry.get_graph(graph_name)  # UnknownGraph is a RunError too


def _command_envelope(command: Any | None) -> dict[str, Any]:
    if command is None:
        return {"type": "none"}
    from orchestration.types import Command

    if not isinstance(command, Command):
        raise InvalidRunInput(
            f"resume_thread takes a Command or None, got {type(command).__name__}; wrap an "
            "answer as Command(resume=answer)"
        )
    goto = command.goto if isinstance(command.goto, (list, tuple)) else [command.goto]
    if any(not isinstance(g, str) for g in goto):
        raise InvalidRunInput("a queued Command may only goto node names, not Send objects")
    return {"type": "command", "resume": command.resume, "update": command.update,
            "goto": list(goto)}


def decode_input(run: Run) -> dict[str, Any]:
    """The envelope a run was queued with: {"type": "value"|"command"|"fork"|"none", ...}."""
    return serde.loads(bytes(run.input)) if run.input else {"type": "none"}


def _dump(envelope: dict[str, Any]) -> bytes:
    try:
        return serde.dumps(envelope)
    except Exception as exc:
        raise InvalidRunInput(f"the run's input cannot be stored: {exc}") from exc


def _user_or_none(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None
