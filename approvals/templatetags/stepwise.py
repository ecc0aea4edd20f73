"""Small template helpers for the review pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from django import template

from approvals.diff import clip

register = template.Library()


@register.filter
def get_item(mapping: Mapping[str, Any], key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, Mapping) else None


@register.inclusion_tag("approvals/_json.html")
def json_value(value: Any, full_url: str = "", field: str = "") -> dict[str, Any]:
    """A value as JSON within the page's budget; past it, cut, with a link to the whole value
    (`full_url`, narrowed to `field` when given)."""
    shown = clip(value)
    if full_url and field:
        full_url = f"{full_url}?{urlencode({'field': field})}"
    return {"shown": shown, "full_url": full_url}


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
