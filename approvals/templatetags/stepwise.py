"""Small template helpers for the review pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

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


@register.simple_tag(takes_context=True)
def tree_row(context: Any, r: Any, oob: bool = False) -> str:
    """One row of the checkpoint tree (approvals/treeview.py `ShownRow`). Built here rather
    than by an {% include %} per row: a thread page draws ~50 rows and a template include
    each cost more than the rest of the page."""
    tree = context["tree"]
    paths = "".join(
        f'<path d="{s.path}"{" class=\"branch\"" if s.is_branch else ""}/>'
        for s in r.row.segments
    )
    svg_open = f'<svg class="lanes" width="{tree.width}" height="30" aria-hidden="true">'
    rid = escape(r.id)
    if r.is_fold:
        dots = "".join(f'<circle cx="{x}" cy="15" r="3"/>' for x in r.row.xs)
        url = escape(f'{context["tree_url"]}?{urlencode({"unfold": r.fold_key})}')
        show = f"the newest {r.reveals}" if r.reveals < r.count else "them"
        return mark_safe(  # noqa: S308  every value above is escaped or a number
            f'<li id="cp-{rid}" class="fold">{svg_open}{paths}{dots}</svg>'
            f'<a class="unfold" href="{url}" hx-get="{url}" hx-include="#tree-state" '
            f'hx-target="#cp-{rid}" hx-swap="outerHTML">{r.count} checkpoints folded, steps '
            f"{r.first_step}–{r.last_step} · show {show}</a></li>"
        )
    classes = [f"src-{r.detail.source}" if r.detail else "src-unknown"]
    marks = ""
    if r.is_head:
        classes.append("head")
        marks += " · HEAD"
    if r.is_pending:
        classes.append("pending")
        marks += " · waiting"
    if r.is_selected:
        classes.append("selected")
    radius = 7 if r.is_head or r.is_pending else 5
    url = f'{context["cp_base"]}{rid}/'
    label = escape(r.detail.label) if r.detail else rid
    return mark_safe(  # noqa: S308  every value above is escaped or a number
        f'<li id="cp-{rid}" class="{escape(" ".join(classes))}"'
        f'{" hx-swap-oob=\"true\"" if oob else ""}>{svg_open}{paths}'
        f'<circle cx="{r.row.xs[0]}" cy="15" r="{radius}"/></svg>'
        f'<a class="cp" href="{url}" hx-get="{url}" hx-target="#checkpoint-detail" '
        f'data-checkpoint="{rid}"{" aria-current=\"true\"" if r.is_selected else ""}>'
        f"{label}{marks}</a></li>"
    )
