"""The pages' helpers that are more than markup: the payload read from its schema, Markdown,
JSON within the page's budget, durations, diffs split, a checkpoint tree row, what a decision
sets in motion and the queue around a review. Registered as Jinja2 filters and globals by
`approvals.templating`."""

from __future__ import annotations

import datetime as dt
import html
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from django.core.signals import setting_changed
from django.template.defaultfilters import truncatechars
from django.urls import reverse
from django.utils import timezone
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from approvals import queue
from approvals.consequences import Consequence, consequence
from approvals.diff import clip
from approvals.markdown import render_markdown
from approvals.models import ReviewRequest
from approvals.schema_render import payload_schema, render_value
from approvals.selectors import HistoryItem


def markdown(text: Any) -> SafeString:
    return render_markdown(str(text or ""))


# Payload sections kept per process: a review's page shows it when opened and again on the
# page its decision redirects to. Bounded by entries; each is within the page's value budget.
MAX_KEPT_PAYLOADS = 512
_PayloadKey = tuple[int, str, int, int | None, str, dt.datetime, str]
_kept_payloads: OrderedDict[_PayloadKey, SafeString] = OrderedDict()
_kept_lock = threading.Lock()


def payload_html(review: ReviewRequest) -> SafeString:
    """The payload as HTML from its schema, kept per process. Only a pause writes a review's
    payload: when it opens the review, or when a later pause asks the same interrupt again
    while the review is still open (`actions._update_review`: a new run or a new paused
    checkpoint, with whatever the node asked this time). Decisions, claims and re-answers
    write other columns or new reviews. So the key is the review with the run and the
    checkpoint that last wrote it (each pause writes a new checkpoint), its thread, interrupt
    and creation time (a number reused by a fresh database is another review) and the
    active language (dates' month names)."""
    key = (review.pk, review.interrupt_id, review.thread_id, review.run_id,
           review.checkpoint_id, review.created_at, get_language() or "")
    with _kept_lock:
        kept = _kept_payloads.get(key)
        if kept is not None:
            _kept_payloads.move_to_end(key)
            return kept
    html = render_value(review.data, payload_schema(review.payload))
    if review.pk is not None:
        with _kept_lock:
            _kept_payloads[key] = html
            while len(_kept_payloads) > MAX_KEPT_PAYLOADS:
                _kept_payloads.popitem(last=False)
    return html


def forget_payloads(**_: Any) -> None:
    """Drop every kept payload section (tests; a changed setting: number and date formats)."""
    with _kept_lock:
        _kept_payloads.clear()


setting_changed.connect(forget_payloads)


def next_steps(review: ReviewRequest) -> Consequence | None:
    return consequence(review)


@pass_context
def review_queue(context: Context, review: ReviewRequest) -> dict[str, Any]:
    """The list the review was opened from: neighbours and the URLs the page links to."""
    request = context["request"]
    f = queue.queue_filter(request.GET)
    around = queue.request_neighbours(request, f, review.pk)
    query = queue.filter_query(f)
    return {
        "around": around,
        "query": query,
        "self_url": queue.review_url(review.pk, f),
        "previous_url": queue.review_url(around.previous, f) if around.previous else "",
        "next_url": queue.review_url(around.next, f) if around.next else "",
        # what htmx asks when the link is followed (`j`, `k`, a click): the neighbour then
        "previous_follow": queue.follow_url(review.pk, f, "previous"),
        "next_follow": queue.follow_url(review.pk, f, "next"),
        "inbox_url": queue.inbox_url(f),
    }


def history_html(items: Sequence[HistoryItem]) -> Markup:
    """A thread's history list (`selectors.thread_history`), as _history.html printed it,
    built here: the template's loop, a URL and four printed values per item, cost about as
    much as reading the history (~190 us for seven items on every review page, twice a
    review cycle). Printed text is escaped as the pages' `escape_printed` escapes it."""
    if not items:
        body = '\n  <li class="empty">Nothing happened yet.</li>\n'
    else:
        body = "".join(_history_item(item) for item in items)
    return Markup(f'<ol class="history" id="history">\n{body}\n</ol>\n')  # noqa: S704


def _history_item(item: HistoryItem) -> str:
    what = html.escape(item.text)
    if item.review_pk:
        what = f'<a href="{html.escape(reverse("review", args=[item.review_pk]))}">{what}</a>'
    who = f'<span class="who">by {html.escape(item.actor)}</span>' if item.actor else ""
    reason = (f'<span class="reason">“{conditional_escape(truncatechars(item.reason, 160))}”'
              "</span>" if item.reason else "")
    at = timezone.localtime(item.at)  # once, for `at_iso` and `at_short` alike
    return (f'\n  <li class="h-{html.escape(item.kind)}">\n'
            f'    <time datetime="{html.escape(at.isoformat())}">'
            f'{html.escape(at.strftime("%m-%d %H:%M:%S"))}</time>\n'
            f'    <span class="what">{what}</span>\n    {who}\n    {reason}\n  </li>\n')


def agent_answer_form(review: ReviewRequest, bound: Any = None) -> Any:
    """The Agent Inbox answer form: the bound one a failed answer came back with, else new."""
    from approvals.agent_inbox_views import AgentAnswerForm

    return bound if isinstance(bound, AgentAnswerForm) else AgentAnswerForm(review=review)


@pass_context
def json_value(context: Context, value: Any, full_url: str = "", field: str = "",
               label: str = "") -> Markup:
    """A value as JSON within the page's budget; past it, cut, with a link to the whole value
    (`full_url`, narrowed to `field` when given). `label` names the box for a screen reader
    (it scrolls, so it takes the keyboard focus: axe's scrollable-region-focusable)."""
    shown = clip(value)
    if full_url and field:
        full_url = f"{full_url}?{urlencode({'field': field})}"
    template = context.environment.get_template("approvals/_json.html")
    label = label or (f"{field} as JSON" if field else "JSON value")
    return Markup(template.render(shown=shown, full_url=full_url,  # noqa: S704  autoescaped
                                  label=label))


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


def changed_only(changes: list[Any]) -> list[Any]:
    return [c for c in changes if c.is_change]


def unchanged_only(changes: list[Any]) -> list[Any]:
    return [c for c in changes if not c.is_change]


# a lane stroke's class: (from or to a branch, in the bundle of lanes past the drawn ones)
_SEGMENT_CLASS = {
    (False, False): "", (True, False): ' class="branch"',
    (False, True): ' class="bundled"', (True, True): ' class="branch bundled"',
}


@pass_context
def tree_row(context: Context, r: Any, oob: bool = False) -> str:
    """One row of the checkpoint tree (approvals/treeview.py `ShownRow`). Built here rather
    than by an include per row: a thread page draws ~50 rows and a template include each cost
    more than the rest of the page."""
    tree = context["tree"]
    # dict.fromkeys: lanes drawn in the bundle's column make the same stroke many times
    paths = "".join(dict.fromkeys(
        f'<path d="{s.path}"{_SEGMENT_CLASS[s.is_branch, s.bundled]}/>' for s in r.row.segments
    ))
    svg_open = f'<svg class="lanes" width="{tree.width}" height="30" aria-hidden="true">'
    rid = escape(r.id)
    if r.is_fold:
        dots = "".join(f'<circle cx="{x}" cy="15" r="3"/>' for x in r.row.xs)
        url = escape(f"{context['tree_url']}?{urlencode({'unfold': r.fold_key})}")
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
    url = f"{context['cp_base']}{rid}/"
    label = escape(r.detail.label) if r.detail else rid
    return mark_safe(  # noqa: S308  every value above is escaped or a number
        f'<li id="cp-{rid}" class="{escape(" ".join(classes))}"'
        f"{' hx-swap-oob="true"' if oob else ''}>{svg_open}{paths}"
        f'<circle cx="{r.row.xs[0]}" cy="15" r="{radius}"'
        f'{' class="bundled"' if r.row.bundled else ""}/></svg>'
        f'<a class="cp" href="{url}" hx-get="{url}" hx-target="#checkpoint-detail" '
        f'data-checkpoint="{rid}"{' aria-current="true"' if r.is_selected else ""}>'
        f"{label}{marks}</a></li>"
    )
