"""The small values graphs are built and driven with: START/END, Send, Command, Overwrite,
Interrupt, RetryPolicy and the StateSnapshot returned by `get_state`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, final

from orchestration.checkpoint import serde
from orchestration.checkpoint.base import CheckpointConfig, CheckpointMetadata

START = "__start__"
END = "__end__"


@dataclass(frozen=True, slots=True)
class Send:
    """Run `node` once with `arg` as its input instead of the state (map-reduce fan-out)."""

    node: str
    arg: Any = None


@dataclass(frozen=True, slots=True)
class Command[N]:
    """Returned by a node: `update` the state and `goto` other nodes.
    Given as input: `resume` answers pending interrupts (a value, or `{interrupt_id: answer}`).

    `Command[Literal["a", "b"]]` as a node's return annotation tells `compile` where it can go.
    """

    update: Any = None
    goto: str | Send | Sequence[str | Send] = ()
    resume: Any = None


@final
@dataclass(frozen=True, slots=True)
class Overwrite:
    """An update that sets its field to `value`, bypassing the field's reducer.

    Give it wherever a field's update is given: in a node's return value, in
    `Command(update=...)`, in `invoke` input or in `update_state(config, values)`. A `topic`
    list can be trimmed or replaced with it: `{"log": Overwrite(["only this"])}`.

    Within one superstep, as in LangGraph: two `Overwrite`s of one field raise
    `InvalidUpdateError` naming the field and both nodes; an `Overwrite` wins over the plain
    updates other tasks make to the same field in that superstep, whatever their order
    (they are dropped, not applied on top). A field without a reducer still takes one write
    per superstep, `Overwrite` or not. Checkpoints store the plain `value`.
    """

    value: Any


@dataclass(frozen=True, slots=True)
class Interrupt:
    """A pause asked for by `interrupt(value)` inside `node`; answer it with `Command(resume=)`."""

    id: str
    value: Any
    node: str


def _retry_everything(error: BaseException) -> bool:
    return isinstance(error, Exception)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry a failing node in place before the failure reaches the caller.

    `backoff` is the pause in seconds before the second attempt; it doubles for each further
    attempt. `retry_on` is an exception class, a tuple of them, or a predicate.
    """

    max_attempts: int = 3
    backoff: float = 0.0
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | Callable[
        [BaseException], bool
    ] = _retry_everything

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}"
            )
        if self.backoff < 0:
            raise ValueError(f"RetryPolicy.backoff must not be negative, got {self.backoff}")

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """`attempt` is the number of attempts made so far (1 after the first failure)."""
        if attempt >= self.max_attempts:
            return False
        retry_on = self.retry_on
        if isinstance(retry_on, type) or isinstance(retry_on, tuple):
            return isinstance(error, retry_on)
        return bool(retry_on(error))

    def delay(self, attempt: int) -> float:
        return self.backoff * 2.0 ** (attempt - 1)


@dataclass(frozen=True, slots=True)
class PregelTask:
    """A task a snapshot's checkpoint waits to run (`StateSnapshot.tasks`). `state` is the
    subgraph's own snapshot when the task runs one and `get_state(..., subgraphs=True)` was
    asked (as LangGraph's)."""

    id: str
    name: str
    interrupts: tuple[Interrupt, ...] = ()
    state: StateSnapshot | None = None


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """A thread's state at one checkpoint, as `get_state` / `get_state_history` return it."""

    values: Any
    next: tuple[str, ...]
    config: CheckpointConfig
    metadata: CheckpointMetadata | None
    created_at: datetime | None
    parent_config: CheckpointConfig | None
    interrupts: tuple[Interrupt, ...] = field(default=())
    # filled by get_state(config, subgraphs=True): the pending tasks, with subgraph states
    tasks: tuple[PregelTask, ...] = field(default=())


# A task's update is kept as pending writes when its superstep pauses or fails, and a resumed
# `Command(update=...)` is held the same way: an Overwrite in them must come back as one.
serde.register(Overwrite)
