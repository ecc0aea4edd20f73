"""A review's payload read as a person reads it: labels, money, dates, links, lists, tables.

The payload's JSON Schema (`data_schema`, else the edit `schema`) gives titles, descriptions
(Markdown), formats and enum labels; a value the schema does not describe is shown by its
shape. Everything is escaped (`format_html`) or sanitized (`render_markdown`), and the page
stays within a budget: long text, long lists and deep nesting are cut with a pointer to the
raw JSON, which the page keeps one click away.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from django.utils import formats
from django.utils.functional import Promise
from django.utils.safestring import SafeString, mark_safe

from approvals.diff import VALUE_BUDGET
from approvals.markdown import render_markdown

# One review page shows at most this much rendered text; the raw JSON has the rest.
PAGE_BUDGET = 60_000
MAX_ITEMS = 100
MAX_DEPTH = 5
CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF "}
MONEY_FORMATS = {"money", "currency", "x-money"}


def format_html(template: str, *args: Any) -> SafeString:
    """Django's `format_html` (each argument through `conditional_escape`), the same markup,
    without its lazy-argument wrappers: a payload of ten fields called it ~20 times, and its
    wrappers were half of rendering the payload on every review page."""
    return SafeString(template.format(*map(_escape, args)))


def _escape(value: Any) -> str:
    """Django's `conditional_escape`: markup kept as it is, anything else escaped as text."""
    if type(value) is str:
        return html_lib.escape(value)
    if isinstance(value, Promise):
        value = str(value)
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return html_lib.escape(str(value))


@dataclass
class _Budget:
    left: int = PAGE_BUDGET
    cut: list[str] = field(default_factory=list)

    def take(self, text: str, where: str) -> str:
        """`text` cut to the value budget and to what the page has left."""
        limit = min(VALUE_BUDGET, max(self.left, 0))
        self.left -= min(len(text), limit)
        if len(text) > limit:
            self.cut.append(where)
            return text[:limit] + "…"
        return text


def payload_schema(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The schema that describes `payload["data"]`: `data_schema` if the graph gave one, else
    the edit `schema` (its titles and formats describe the same fields), else none."""
    for key in ("data_schema", "schema"):
        schema = payload.get(key)
        if isinstance(schema, Mapping):
            return dict(schema)
    return {}


def render_value(value: Any, schema: Mapping[str, Any] | None = None) -> SafeString:
    """`value` as HTML following `schema`; with a note under it if the budget cut anything."""
    budget = _Budget()
    html = _render(value, dict(schema or {}), budget, 0, "")
    if budget.cut:
        note = format_html(
            '<p class="clipped muted">Cut to fit the page: {}. The raw JSON has it all.</p>',
            ", ".join(budget.cut[:5]) + (" and more" if len(budget.cut) > 5 else ""),
        )
        html = html + note
    return mark_safe(html)  # noqa: S308 - built from format_html pieces only


def label_for(name: str, spec: Mapping[str, Any]) -> str:
    return str(spec.get("title") or name.replace("_", " ").strip().capitalize() or name)


def _render(value: Any, spec: dict[str, Any], budget: _Budget, depth: int, where: str) -> str:
    if budget.left <= 0:
        budget.cut.append(where or "the rest")
        return format_html('<span class="muted">{}</span>', "(not shown: page budget used)")
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            budget.cut.append(where)
            return format_html('<span class="muted">{}</span>', "(nested too deep to show)")
        return _render_object(value, spec, budget, depth, where)
    if isinstance(value, list | tuple):
        return _render_array(value, spec, budget, depth, where)
    return _render_scalar(value, spec, budget, where, context={})


def _render_object(
    value: Mapping[str, Any], spec: dict[str, Any], budget: _Budget, depth: int, where: str
) -> str:
    props = spec.get("properties") if isinstance(spec.get("properties"), Mapping) else {}
    # the schema's order first (the graph author's), then any key it does not describe
    names = [n for n in props if n in value] + [n for n in value if n not in props]
    rows = []
    for name in names:
        sub = dict(props.get(name) or {})
        item = value[name]
        label = label_for(str(name), sub)
        path = f"{where}.{name}" if where else str(name)
        if isinstance(item, Mapping) and item:
            inner = _render(item, sub, budget, depth + 1, path)
            rows.append(format_html(
                '<div class="pl-section"><dt>{}</dt><dd>{}{}</dd></div>',
                label, _description(sub), mark_safe(inner),  # noqa: S308
            ))
            continue
        if isinstance(item, list | tuple):
            inner = _render_array(item, sub, budget, depth + 1, path)
        else:
            inner = _render_scalar(item, sub, budget, path, context=value)
        rows.append(format_html(
            "<div><dt>{}</dt><dd>{}{}</dd></div>", label, mark_safe(inner),  # noqa: S308
            _description(sub),
        ))
    if not rows:
        return format_html('<span class="muted">{}</span>', "(empty)")
    return format_html('<dl class="payload">{}</dl>', mark_safe("".join(rows)))  # noqa: S308


def _description(spec: Mapping[str, Any]) -> str:
    text = spec.get("description")
    if not isinstance(text, str) or not text.strip():
        return ""
    if len(text) > DESCRIPTION_KEPT_CHARS:
        return _description_html(text)
    return _kept_description_html(text)


def _description_html(text: str) -> SafeString:
    return format_html('<div class="pl-help">{}</div>', render_markdown(text))


# A schema's descriptions are the same on every review of its graph's node, and Markdown was
# a third of rendering a payload. The HTML is a function of the text alone (the parser and
# sanitizer are fixed), so a kept one is the one it would render again.
DESCRIPTION_KEPT_CHARS = 4_000
_kept_description_html = lru_cache(maxsize=512)(_description_html)


def _render_array(
    value: Sequence[Any], spec: dict[str, Any], budget: _Budget, depth: int, where: str
) -> str:
    if not value:
        return format_html('<span class="muted">{}</span>', "(none)")
    items_spec = spec.get("items") if isinstance(spec.get("items"), Mapping) else {}
    shown = list(value[:MAX_ITEMS])
    more = ""
    if len(value) > MAX_ITEMS:
        budget.cut.append(f"{where or 'list'} ({len(value)} items)")
        more = format_html('<p class="muted">… and {} more.</p>', len(value) - MAX_ITEMS)
    if all(isinstance(v, Mapping) for v in shown) and depth < MAX_DEPTH:
        table = _table(shown, dict(items_spec), budget, depth, where)
        if table:
            return table + more
    lis = [
        format_html("<li>{}</li>", mark_safe(  # noqa: S308
            _render(v, dict(items_spec), budget, depth + 1, f"{where}[{i}]")
        ))
        for i, v in enumerate(shown)
    ]
    return format_html('<ul class="pl-list">{}</ul>', mark_safe("".join(lis))) + more  # noqa: S308


def _table(
    rows: list[Mapping[str, Any]], spec: dict[str, Any], budget: _Budget, depth: int, where: str
) -> str:
    """Objects with flat values as a table (columns: the schema's, then the rest); nested
    values inside fall back to `_render`. None if the rows share no column."""
    props = spec.get("properties") if isinstance(spec.get("properties"), Mapping) else {}
    columns = [c for c in props if any(c in r for r in rows)]
    for r in rows:
        columns += [c for c in r if c not in columns]
    if not columns or len(columns) > 12:
        return ""
    head = mark_safe("".join(  # noqa: S308 - format_html pieces
        format_html('<th scope="col">{}</th>', label_for(str(c), dict(props.get(c) or {})))
        for c in columns
    ))
    body = []
    for i, r in enumerate(rows):
        cells = []
        for c in columns:
            sub = dict(props.get(c) or {})
            cell = _render(r[c], sub, budget, depth + 1, f"{where}[{i}].{c}") if c in r else ""
            if c in r and not isinstance(r[c], Mapping | list | tuple):
                cell = _render_scalar(r[c], sub, budget, f"{where}[{i}].{c}", context=r)
            cells.append(format_html("<td>{}</td>", mark_safe(cell)))  # noqa: S308
        body.append(format_html("<tr>{}</tr>", mark_safe("".join(cells))))  # noqa: S308
    return format_html(
        '<div class="table-scroll"><table class="list pl-table"><thead><tr>{}</tr></thead>'
        "<tbody>{}</tbody></table></div>", head, mark_safe("".join(body)),  # noqa: S308
    )


def _render_scalar(
    value: Any, spec: Mapping[str, Any], budget: _Budget, where: str,
    context: Mapping[str, Any],
) -> str:
    if value is None:
        return format_html('<span class="muted">{}</span>', "—")
    label = _enum_label(value, spec)
    if label is not None:
        return format_html("{}", label)
    if isinstance(value, bool):
        return format_html("{}", "Yes" if value else "No")
    fmt = str(spec.get("format") or "")
    if fmt in MONEY_FORMATS and isinstance(value, int | float | str):
        money = format_money(value, _currency(spec, context))
        if money:
            return format_html('<span class="money">{}</span>', money)
    if isinstance(value, int | float):
        return format_html("{}", formats.number_format(value, use_l10n=False, force_grouping=True))
    text = str(value)
    if fmt in ("date", "date-time"):
        shown = _date(text, fmt)
        if shown:
            return format_html('<time datetime="{}">{}</time>', text, shown)
    if fmt in ("uri", "url", "iri") or (not fmt and text.startswith(("https://", "http://"))):
        if text.startswith(("https://", "http://")) and len(text) <= 2_000:
            return format_html(
                '<a href="{}" rel="noopener noreferrer nofollow">{}</a>', text,
                budget.take(text, where),
            )
    if fmt == "email" and "@" in text and len(text) <= 320:
        return format_html('<a href="mailto:{}">{}</a>', text, text)
    if fmt in ("markdown", "x-markdown"):
        return format_html('<div class="pl-md">{}</div>', render_markdown(budget.take(text, where)))
    shown_text = budget.take(text, where)
    if "\n" in shown_text or len(shown_text) > 120:
        return format_html('<p class="pl-text">{}</p>', shown_text)
    return format_html("{}", shown_text)


def _enum_label(value: Any, spec: Mapping[str, Any]) -> str | None:
    """The label of an enum value: `oneOf: [{const, title}]`, or `enum` with `x-enum-labels`
    / `enumNames` beside it (the two common conventions)."""
    for option in spec.get("oneOf") or spec.get("anyOf") or []:
        if isinstance(option, Mapping) and "const" in option and option["const"] == value:
            return str(option.get("title") or value)
    enum = spec.get("enum")
    labels = spec.get("x-enum-labels") or spec.get("enumNames")
    if isinstance(enum, list) and value in enum:
        if isinstance(labels, list) and len(labels) == len(enum):
            return str(labels[enum.index(value)])
        if isinstance(labels, Mapping) and str(value) in labels:
            return str(labels[str(value)])
    return None


def _currency(spec: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """`x-currency: "EUR"`, or `x-currency-field` naming a sibling field, or a sibling
    `currency` field."""
    code = spec.get("x-currency")
    if isinstance(code, str) and code:
        return code
    sibling = spec.get("x-currency-field") or "currency"
    code = context.get(sibling) if isinstance(context, Mapping) else None
    return str(code) if isinstance(code, str) and code else ""


def format_money(value: Any, currency: str) -> str:
    """'€1,250.00' / 'CAD 12.50' / '12.50' (no currency known)."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ""
    if not amount.is_finite():
        return ""
    digits = 0 if currency == "JPY" else 2
    number = f"{amount:,.{digits}f}"
    if not currency:
        return number
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{number}" if symbol else f"{currency.upper()} {number}"


def _date(text: str, fmt: str) -> str:
    try:
        if fmt == "date":
            return formats.date_format(dt.date.fromisoformat(text), "j M Y")
        value = dt.datetime.fromisoformat(text)
        return formats.date_format(value, "j M Y, H:i") + (
            f" {value.tzname()}" if value.tzinfo else ""
        )
    except ValueError:
        return ""
