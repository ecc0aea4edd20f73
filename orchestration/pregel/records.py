"""A checkpoint read as the record of its step (`get_state_history`, `get_state`): its
`tasks` list each task its `next` stands for, with the interrupt it raised there, answered
since or not, as LangGraph 1.x's history shows them; its `created_at` is an ISO 8601 string,
as LangGraph's (the checkpoint's `ts` stays a datetime).

Both built when first read: a history of hundreds of snapshots is mostly read for its values,
and a task's id is a hash (`plan.task_id`), so every snapshot building its tasks and its time
up front would cost the history listing a tenth more for what few callers look at.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from orchestration.checkpoint.base import CheckpointConfig, CheckpointTuple
from orchestration.pregel.plan import head_of, plan_tasks, task_id, task_views
from orchestration.types import PregelTask, StateSnapshot

__all__ = ["RecordSnapshot", "lazy_tasks"]


class _Lazy:
    """What a record's `tasks` slot holds until first read: what they are built from."""

    __slots__ = ("config", "next", "pending")

    def __init__(
        self, config: CheckpointConfig, next_: tuple[str, ...], pending: CheckpointTuple | None
    ) -> None:
        self.config, self.next, self.pending = config, next_, pending


def lazy_tasks(
    config: CheckpointConfig, next_: tuple[str, ...], pending: CheckpointTuple | None
) -> Any:
    """The value for a `RecordSnapshot`'s `tasks` slot: () when nothing is next."""
    return _Lazy(config, next_, pending) if next_ else ()


def _build(lazy: _Lazy) -> tuple[PregelTask, ...]:
    """Each task with what its pending writes say (a step that paused or failed keeps them);
    a committed step's writes are not kept: its tasks have no path, result or error (what
    they wrote is the next checkpoint's `metadata.writes`)."""
    pending = lazy.pending
    if pending is None:
        checkpoint_id = lazy.config.checkpoint_id or ""
        return tuple(
            PregelTask(task_id(checkpoint_id, index, node), node)
            for index, node in enumerate(lazy.next)
        )
    return tuple(task_views(plan_tasks(pending.checkpoint), head_of(pending).writes))


# the slots' own descriptors, which the properties below hide
_TASKS = StateSnapshot.tasks
_CREATED_AT = StateSnapshot.created_at


class RecordSnapshot(StateSnapshot):
    """A `StateSnapshot` whose `tasks` are built on first read (same slots, same fields:
    equal to, and shown as, the snapshot the constructor would build)."""

    __slots__ = ()

    @property  # type: ignore[misc]
    def tasks(self) -> tuple[PregelTask, ...]:
        value = _TASKS.__get__(self)
        if type(value) is _Lazy:
            value = _build(value)
            _TASKS.__set__(self, value)
        return value  # type: ignore[no-any-return]

    @tasks.setter
    def tasks(self, value: tuple[PregelTask, ...]) -> None:  # the dataclass __init__
        _TASKS.__set__(self, value)

    @property  # type: ignore[misc]
    def created_at(self) -> str | None:
        value = _CREATED_AT.__get__(self)
        if isinstance(value, datetime):
            value = value.isoformat()
            _CREATED_AT.__set__(self, value)
        return value  # type: ignore[no-any-return]

    @created_at.setter
    def created_at(self, value: datetime | str | None) -> None:
        _CREATED_AT.__set__(self, value)

    def __eq__(self, other: object) -> bool:
        # equal to a StateSnapshot of the same fields (the dataclass's own __eq__ compares
        # only instances of one class)
        if not isinstance(other, StateSnapshot):
            return NotImplemented
        return _fields(self) == _fields(other)

    __hash__ = StateSnapshot.__hash__


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(StateSnapshot))


def _fields(snapshot: StateSnapshot) -> tuple[Any, ...]:
    return tuple(getattr(snapshot, name) for name in _FIELD_NAMES)
