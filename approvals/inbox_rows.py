"""The inbox table's rows, rendered in Python.

The inbox shows up to 50 rows and is the page every reviewer reloads most; as a template loop
each row cost about thirty variable lookups, four `{% url %}` reverses and two `{% csrf_token %}`
tags, which made the rows most of the page's CPU. Here each row is one f-string, the URLs
are built from one reverse per URL kind per page (a sentinel id, replaced per row), the
CSRF input is made once, and every value is escaped with `html.escape` (what Django's `escape`
calls) as it goes into an f-string. The markup is what `_inbox_list.html` used to produce for a row.

A row's markup but its age, due badge and CSRF token is kept per process (`_ROWS`), keyed by
the row's every shown value and the viewer's and page's parts: rebuilding it (escapes, URL
quoting, the time's text) was most of the rows' CPU, and most rows read the same on every
reload.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable
from html import escape as esc  # what django.utils.html.escape does, minus SafeString
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.template.defaultfilters import timeuntil_filter
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timesince import timesince
from django.utils.translation import get_language

from approvals.models import ReviewRequest
from approvals.selectors import InboxRow
from approvals.templating import page_csrf_token

_SENTINEL = 987654321
# what `reverse` leaves unquoted in a path argument (django.urls.resolvers)
_PATH_SAFE = "!$&'()*+,;=" + "/~:@"


# The parts of a URL around its argument depend on the URLconf and the script prefix only:
# reversed once per process for each (four reverses per page were ~4% of the inbox's CPU).
_URL_PARTS: dict[tuple[str, str, str, str], tuple[str, str]] = {}


def _url_maker(name: str) -> tuple[str, str]:
    """The parts of `name`'s URL around its one integer argument."""
    return _parts(name, _SENTINEL)


def _parts(name: str, sentinel: Any) -> tuple[str, str]:
    """The parts of `name`'s URL reversed with `sentinel` as its one argument, around it."""
    key = (name, str(sentinel), str(get_urlconf() or settings.ROOT_URLCONF), get_script_prefix())
    found = _URL_PARTS.get(key)
    if found is None:
        head, tail = reverse(name, args=[sentinel]).rsplit(str(sentinel), 1)
        found = _URL_PARTS[key] = (head, tail)
    return found


# A row's markup but its age, its due/overdue badge and the page's CSRF token (each page
# masks its own) depends only on its `InboxRow` (every field the row shows) and on what the
# key's other parts name: whether the viewer may decide, whether they claimed it, the
# page's path and filter, the URLs' parts, the time zone and the language. So a row read
# again unchanged (the inbox is reloaded on every cycle and on every live update) reuses
# its markup; a review decided, claimed, released or reassigned since reads as a new
# `InboxRow`, a new key. Values: the markup before the age (through `<time ...>`), and the
# action form's markup before and after the CSRF input ("" and "": no form).
_RowKey = tuple[Any, ...]
_ROWS: dict[_RowKey, tuple[str, str, str]] = {}
_ROWS_MAX = 4096  # about 6 MB at most; emptied when full (a page refills its 50)


def inbox_rows(request: Any, reviews: Iterable[InboxRow], *, can_decide: bool,
               queue_query: str) -> SafeString:
    urls = (_url_maker("review"), _url_maker("review-claim"), _url_maker("review-unclaim"),
            _parts("thread", "x"))
    suffix = f"?{queue_query}" if queue_query else ""
    here = esc(request.get_full_path())
    # what `template_localtime` converts to, and `date:"c"` then prints (isoformat)
    tz = timezone.get_current_timezone()
    # read once per page, not per row: a lookup through asgiref's context-local storage
    language = get_language()
    page_key = (can_decide, suffix, here, urls, tz, language)
    csrf = ('<input type="hidden" name="csrfmiddlewaretoken" '
            f'value="{esc(page_csrf_token(request))}">') if can_decide else ""
    now = timezone.now()
    open_statuses = ReviewRequest.OPEN
    user_pk = request.user.pk
    rows = _ROWS
    parts: list[str] = []
    for review in reviews:
        key = (page_key, review, review.claimed_by_id == user_pk)
        kept = rows.get(key)
        if kept is None:
            if len(rows) >= _ROWS_MAX:
                rows.clear()
            kept = rows[key] = _row_markup(review, can_decide=can_decide, mine=key[2],
                                           suffix=suffix, here=here, urls=urls, tz=tz)
        head, form_head, form_tail = kept
        is_open = review.status in open_statuses
        if is_open and review.due_at is not None and review.due_at < now:
            due = ' <span class="badge overdue">Overdue</span>'
        elif review.due_at and is_open:
            due = f' <span class="muted">due in {esc(timeuntil_filter(review.due_at))}</span>'
        else:
            due = ""
        parts.append(
            f"{head}{esc(_timesince(review.created_at, now, language))}</time>{due}</td>\n"
            f'    <td class="actions">{form_head}{csrf if form_head else ""}{form_tail}\n'
            "    </td>\n  </tr>"
        )
    return mark_safe("\n  ".join(parts))  # noqa: S308 - every value in it went through esc()


def _row_markup(review: InboxRow, *, can_decide: bool, mine: bool, suffix: str, here: str,
                urls: tuple[tuple[str, str], ...], tz: Any) -> tuple[str, str, str]:
    """One row's markup through its `<time>` tag, and its action form's around the CSRF
    input (`_ROWS`); `here` (the page's path) is escaped already."""
    (review_head, review_tail), (claim_head, claim_tail), (unclaim_head, unclaim_tail), \
        (thread_head, thread_tail) = urls
    pk = review.pk
    select = (
        '<td class="select"><input type="checkbox" form="bulk-form" name="reviews" '
        f'value="{pk}" id="bulk-{pk}" hx-preserve="true" data-bulk-row '
        f'aria-label="Select review #{pk}"></td>') if can_decide else ""
    link = esc(f"{review_head}{pk}{review_tail}{suffix}")
    subgraph = (
        ' <span class="muted subgraph-path" title="asked inside a subgraph">in '
        f"<code>{esc(review.node)}</code></span>") if "|" in review.node else ""
    claimed = (f' <span class="muted">by {esc(review.claimed_by_name)}</span>'
               if review.claimed_by_id is not None else "")
    form_head = form_tail = ""
    if can_decide and review.status == ReviewRequest.Status.PENDING:
        form_head, form_tail = _action_form(f"{claim_head}{pk}{claim_tail}", here, "Claim")
    elif can_decide and review.status == ReviewRequest.Status.CLAIMED and mine:
        form_head, form_tail = _action_form(f"{unclaim_head}{pk}{unclaim_tail}", here,
                                            "Release")
    thread_url = esc(thread_head + quote(review.thread_id, safe=_PATH_SAFE) + thread_tail)
    thread_title = esc(_chars(review.thread_title or review.thread_id, 40))
    label = ReviewRequest.Status(review.status).label \
        if review.status in ReviewRequest.Status.values else review.status
    status = esc(review.status)
    head = (
        f"<tr>\n    {select}\n"
        f'    <td data-label="Review"><a href="{link}" data-review-link\n'
        f'       hx-get="{link}" hx-target="body" hx-swap="innerHTML show:window:top" '
        f'hx-push-url="true">{esc(review.title or review.node)}</a> '
        f'<span class="muted">#{pk}</span>{subgraph}</td>\n'
        f'    <td data-label="Thread"><a href="{thread_url}">{thread_title}</a></td>\n'
        f'    <td data-label="Graph">{esc(review.graph_name)}</td>\n'
        f'    <td data-label="Status"><span class="badge status-{status}">'
        f"{esc(str(label))}</span>{claimed}</td>\n"
        f'    <td data-label="Assignee">{esc(review.assignee or "—")}</td>\n'
        f'    <td data-label="Waiting"><time datetime="'
        # an ISO time is digits and -:T.+ only: nothing to escape
        f'{review.created_at.astimezone(tz).isoformat()}">'
    )
    return head, form_head, form_tail


# Below four weeks (no month can have passed) `timesince` depends on the whole minutes
# elapsed and the language only: its text is reused instead of translated again for each
# row (four of its translations per call were a quarter of the inbox rows' CPU).
_AGE_SPAN = 28 * 24 * 3600
_AGES: dict[tuple[str | None, int], str] = {}


def _timesince(created: dt.datetime, now: dt.datetime, language: str | None) -> str:
    """`timesince(created, now)` (the `timesince` filter's text) in `language`, the active one."""
    delta = now - created
    since = delta.days * 86400 + delta.seconds  # as timesince: no microseconds
    if not 0 < since < _AGE_SPAN:
        return timesince(created, now)
    key = (language, since // 60)
    text = _AGES.get(key)
    if text is None:
        if len(_AGES) > 50_000:  # every minute of four weeks in a few languages: a bound
            _AGES.clear()
        text = _AGES[key] = timesince(created, now)
    return text


def _chars(text: str, length: int) -> str:
    """`Truncator(text).chars(length)` (the `truncatechars` filter), which normalizes the text
    and then translates its ellipsis on every call: a short title needs neither step."""
    text = unicodedata.normalize("NFC", text)
    return text if len(text) <= length else Truncator(text).chars(length)


def _action_form(url: str, here: str, label: str) -> tuple[str, str]:
    """A claim or release form, around where its CSRF input goes; `here` (the page's path)
    is escaped already."""
    return (f'\n      <form method="post" action="{url}" hx-post="{url}">\n        ',
            f'<input type="hidden" name="next" value="{here}">\n'
            f'        <button type="submit">{label}</button>\n      </form>')
