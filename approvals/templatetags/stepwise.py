"""Small template helpers for the review pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django import template

from approvals.diff import pretty

register = template.Library()


@register.filter
def get_item(mapping: Mapping[str, Any], key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, Mapping) else None


@register.filter
def as_json(value: Any) -> str:
    return pretty(value)


@register.filter
def duration(delta: dt.timedelta | None) -> str:
    """'3 h 4 min', '12 s': how long something has been stuck."""
    if delta is None:
        return ""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days {hours % 24} h"


@register.filter
def changed_only(changes: list[Any]) -> list[Any]:
    return [c for c in changes if c.is_change]


@register.filter
def unchanged_only(changes: list[Any]) -> list[Any]:
    return [c for c in changes if not c.is_change]
