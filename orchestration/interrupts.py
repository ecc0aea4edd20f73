"""Dynamic interrupts: `interrupt(value)` inside a node pauses the run until a person answers.

The first call raises `GraphInterrupt` (caught by the loop, never seen by callers); once the
run is resumed with `Command(resume=answer)` the node runs again from its start and the same
call returns the answer. Calls are matched to answers by their order inside the node.
"""

from __future__ import annotations

import hashlib
import re
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from orchestration.types import Interrupt

if TYPE_CHECKING:
    from orchestration.context import RunContext
    from orchestration.pregel.plan import Task


class GraphInterrupt(Exception):  # noqa: N818 - named like LangGraph's, it is a signal not an error
    """Raised by `interrupt()` to stop the running task; the loop records `interrupt`."""

    def __init__(self, interrupt: Interrupt, index: int) -> None:
        self.interrupt = interrupt
        self.index = index
        super().__init__(f"node {interrupt.node!r} is waiting for an answer ({interrupt.id})")


class TaskScope:
    """What `interrupt()` needs to know about the task calling it. The task's id is read only
    when the node does call `interrupt()` (most never do, and the id is a hash)."""

    __slots__ = (
        "task", "resume", "calls", "subcalls", "thread_id", "step", "context", "memo",
        "task_calls", "recorded", "config", "edits",
    )

    def __init__(
        self,
        task: Task,
        resume: list[Any],
        thread_id: str = "",
        step: int = 0,
        context: RunContext | None = None,
        edits: int = 0,
    ) -> None:
        self.task = task
        self.edits = edits  # edits on the thread's line so far (pregel.plan.edits_of)
        self.resume = resume
        self.calls = 0
        self.subcalls = 0  # subgraphs run by this task so far (each gets its own chain)
        self.thread_id = thread_id
        self.step = step
        self.context = context  # the run's config, saver, store and sink (context.py)
        # The functional API's @task calls (func.py): how many so far, and [index, result]
        # of those finished, first those an earlier pass of this task recorded; `recorded`
        # holds the same by index, for the task calls to look up.
        self.task_calls = 0
        self.memo: list[Any] = list(getattr(resume, "memo", ()))
        self.recorded: dict[int, Any] = dict(self.memo) if self.memo else {}
        self.config: dict[str, Any] | None = None  # the node's config, once it asks for it


current_task: ContextVar[TaskScope | None] = ContextVar("stepwise_task", default=None)


# What `interrupt_id` returns: 24 lowercase hex digits.
INTERRUPT_ID = re.compile(r"[0-9a-f]{24}")


def interrupt_id(task_id: str, index: int) -> str:
    """Stable for one task of one checkpoint: replaying the same checkpoint asks the same id;
    a fork (a new checkpoint id) asks anew."""
    return hashlib.blake2b(f"{task_id}:{index}".encode(), digest_size=12).hexdigest()


def task_key() -> str:
    """A stable idempotency key for the task calling it, to pass to an outside system (a
    payment API, a mailer) so that doing the same thing twice is recognised there.

    The key is a hash of (thread id, superstep number, node, the task's position in that
    superstep): it names the task's place in the thread's history, not the checkpoint it ran
    from. So every execution of "the same task" gets the same key: a retry after a crash,
    a resume that re-runs it, and a branch (fork, re-decision, or fork with edited values)
    that replays it from an earlier checkpoint, because a fork copies that checkpoint's
    superstep number and the steps an edit adds are not counted (an edit writes a checkpoint
    one step on without running anything). The outside system then sees the replayed request
    under the original's key: the same request is recognised and done once, a changed one
    (an edited amount) is refused by a system that checks what a key was used for. A
    different task gets a different key: another node, another `Send` of the same node, a
    later iteration of a loop, a new run on a finished thread (later supersteps).
    """
    scope = current_task.get()
    if scope is None:
        raise RuntimeError("task_key() can only be called inside a node while a graph runs it")
    task = scope.task
    step = scope.step - scope.edits  # the line without its edits' steps
    text = f"{scope.thread_id}\x1f{step}\x1f{task.node}\x1f{task.index}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def interrupt(value: Any) -> Any:
    """Pause the run and show `value` to whoever resumes it; returns their answer."""
    scope = current_task.get()
    if scope is None:
        raise RuntimeError(
            "interrupt() can only be called inside a node while a graph runs it"
        )
    index = scope.calls
    scope.calls += 1
    if index < len(scope.resume):
        return scope.resume[index]
    task = scope.task
    if scope.context is not None and not scope.context.durable:
        # Without a saver the pause could never be answered: the review would be lost.
        raise RuntimeError(
            f"node {task.node!r} called interrupt({value!r:.80}), but this graph has no "
            "checkpoint saver, so nobody could ever answer it. Compile the graph with one, "
            "e.g. compile(checkpointer=InMemorySaver()), and pass a thread: "
            'invoke(input, {"configurable": {"thread_id": "1"}})'
        )
    raise GraphInterrupt(Interrupt(interrupt_id(task.id, index), value, task.node), index)
