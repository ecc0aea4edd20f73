"""Reducers: how a node's update for a field combines with the field's current value.

A reducer is any `(current, update) -> new` callable, attached with `Annotated[T, reducer]`.
They must not change `current` in place: checkpoints share values between supersteps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def last_value(current: Any, update: Any) -> Any:
    """The update replaces the value (the default). Two writers in one superstep is an error."""
    return update


def topic(current: Any, update: Any) -> list[Any]:
    """Append-only list: a list (or tuple) update is appended item by item, anything else once."""
    base = [] if current is None else list(current)
    if isinstance(update, list | tuple):
        base.extend(update)
    else:
        base.append(update)
    return base


def merge(current: Any, update: Any) -> dict[Any, Any]:
    """Dict union; the update's keys win."""
    if update is None:
        return {} if current is None else dict(current)
    if not isinstance(update, Mapping):
        raise TypeError(f"merge expects a mapping update, got {type(update).__name__}")
    if current is None:
        return dict(update)
    return {**current, **update}


# LangGraph's chat-history reducer (`langgraph.graph.message`), defined in messages.py.
from orchestration.messages import (  # noqa: E402
    REMOVE_ALL_MESSAGES,
    MessagesState,
    RemoveMessage,
    add_messages,
)

__all__ = [
    "REMOVE_ALL_MESSAGES",
    "MessagesState",
    "RemoveMessage",
    "add_messages",
    "last_value",
    "merge",
    "topic",
]
