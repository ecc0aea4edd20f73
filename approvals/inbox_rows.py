"""The inbox table's rows, rendered in Python.

The inbox shows up to 50 rows and is the page every reviewer reloads most; as a template loop
each row cost about thirty variable lookups, four `{% url %}` reverses and two `{% csrf_token %}`
tags, which made the rows most of the page's CPU. Here each row is one f-string, the URLs
are built from one reverse per URL kind per page (a sentinel id, replaced per row), the
CSRF input is made once, and every value is escaped with `html.escape` (what Django's `escape`
calls) as it goes into an f-string. The markup is what `_inbox_list.html` used to produce for a row.
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


def inbox_rows(request: Any, reviews: Iterable[InboxRow], *, can_decide: bool,
               queue_query: str) -> SafeString:
    review_head, review_tail = _url_maker("review")
    claim_head, claim_tail = _url_maker("review-claim")
    unclaim_head, unclaim_tail = _url_maker("review-unclaim")
    thread_head, thread_tail = _parts("thread", "x")
    suffix = f"?{queue_query}" if queue_query else ""
    here = esc(request.get_full_path())
    csrf = ('<input type="hidden" name="csrfmiddlewaretoken" '
            f'value="{esc(page_csrf_token(request))}">') if can_decide else ""
    # each status as printed (escaped) in its badge: its value (the class) and its label
    badges = {value: (esc(value), esc(str(label)))
              for value, label in ReviewRequest.Status.choices}
    now = timezone.now()
    # what `template_localtime` converts to, and `date:"c"` then prints (isoformat)
    tz = timezone.get_current_timezone()
    user_pk = request.user.pk
    # read once per page, not per row: each is a lookup through asgiref's context-local
    # storage (get_language) or a class attribute chain
    language = get_language()
    open_statuses = ReviewRequest.OPEN
    pending, claimed_status = ReviewRequest.Status.PENDING, ReviewRequest.Status.CLAIMED
    parts: list[str] = []
    for review in reviews:
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
        is_open = review.status in open_statuses
        if is_open and review.due_at is not None and review.due_at < now:
            due = ' <span class="badge overdue">Overdue</span>'
        elif review.due_at and is_open:
            due = f' <span class="muted">due in {esc(timeuntil_filter(review.due_at))}</span>'
        else:
            due = ""
        action = ""
        if can_decide and review.status == pending:
            action = _action_form(f"{claim_head}{pk}{claim_tail}", csrf, here, "Claim")
        elif (can_decide and review.status == claimed_status
              and review.claimed_by_id == user_pk):
            action = _action_form(f"{unclaim_head}{pk}{unclaim_tail}", csrf, here, "Release")
        thread_url = esc(thread_head + quote(review.thread_id, safe=_PATH_SAFE) + thread_tail)
        thread_title = esc(_chars(review.thread_title or review.thread_id, 40))
        status, label = badges.get(review.status) or (esc(review.status),) * 2
        created = review.created_at
        parts.append(
            f"<tr>\n    {select}\n"
            f'    <td data-label="Review"><a href="{link}" data-review-link\n'
            f'       hx-get="{link}" hx-target="body" hx-swap="innerHTML show:window:top" '
            f'hx-push-url="true">{esc(review.title or review.node)}</a> '
            f'<span class="muted">#{pk}</span>{subgraph}</td>\n'
            f'    <td data-label="Thread"><a href="{thread_url}">{thread_title}</a></td>\n'
            f'    <td data-label="Graph">{esc(review.graph_name)}</td>\n'
            f'    <td data-label="Status"><span class="badge status-{status}">'
            f"{label}</span>{claimed}</td>\n"
            f'    <td data-label="Assignee">{esc(review.assignee or "—")}</td>\n'
            f'    <td data-label="Waiting"><time datetime="'
            # an ISO time is digits and -:T.+ only: nothing to escape
            f'{created.astimezone(tz).isoformat()}">'
            f"{esc(_timesince(created, now, language))}</time>{due}</td>\n"
            f'    <td class="actions">{action}\n    </td>\n  </tr>'
        )
    return mark_safe("\n  ".join(parts))  # noqa: S308 - every value in it went through esc()


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


def _action_form(url: str, csrf: str, here: str, label: str) -> str:
    """A claim or release form; `here` (the page's path) is escaped already."""
    return (f'\n      <form method="post" action="{url}" hx-post="{url}">\n'
            f'        {csrf}<input type="hidden" name="next" value="{here}">\n'
            f'        <button type="submit">{label}</button>\n      </form>')
