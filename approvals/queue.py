"""A reviewer's queue: the filtered inbox list a review was opened from, and where to go next.

The inbox's filter travels with the reviewer in the review page's query string (`?status=open
&graph=expense`), so `j`/`k` and "decide, then the next one" walk the same list the reviewer
chose, in the inbox's order. Reads only; deciding stays in `actions.do_decide`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest, QueryDict
from django.urls import reverse

from approvals import selectors
from approvals.access import OVERRIDE_CLAIM, group_names
from approvals.models import ReviewRequest

# How far along the list the neighbours are looked for: a queue, not an export.
WINDOW = 500
FILTER_KEYS = ("status", "graph", "assignee")


def queue_filter(query: QueryDict) -> selectors.InboxFilter:
    return selectors.InboxFilter(
        graph=query.get("graph", ""),
        status=query.get("status", "open") or "open",
        assignee=query.get("assignee", ""),
    )


def filter_query(f: selectors.InboxFilter) -> str:
    """The query string that names `f` (empty for the default inbox)."""
    pairs = {"status": f.status if f.status != "open" else "", "graph": f.graph,
             "assignee": f.assignee}
    return urlencode({k: v for k, v in pairs.items() if v})


def review_url(pk: int, f: selectors.InboxFilter) -> str:
    query = filter_query(f)
    return reverse("review", args=[pk]) + (f"?{query}" if query else "")


def follow_url(pk: int, f: selectors.InboxFilter, direction: str) -> str:
    """Review `pk`'s page asked for its `direction` ("next", "previous") neighbour in `f`:
    resolved when followed (`follow`), not when the page was rendered, so `j` never leads to
    a review decided meanwhile that the list no longer shows."""
    query = filter_query(f)
    return reverse("review", args=[pk]) + f"?{query + '&' if query else ''}go={direction}"


def follow(request: HttpRequest, f: selectors.InboxFilter, pk: int, direction: str
           ) -> int | None:
    """The review `direction` of review `pk` in the list `f` as it is now."""
    around = request_neighbours(request, f, pk)
    return around.next if direction == "next" else around.previous


def inbox_url(f: selectors.InboxFilter) -> str:
    query = filter_query(f)
    return reverse("inbox") + (f"?{query}" if query else "")


@dataclass(frozen=True, slots=True)
class Neighbours:
    previous: int | None  # the list's previous review (any status the filter shows)
    next: int | None  # the list's next review
    next_open: int | None  # the next open review this user may decide (wrapping round)
    position: int | None  # 1-based place of the current review in the list
    total: int


def request_neighbours(request: HttpRequest, f: selectors.InboxFilter, pk: int) -> Neighbours:
    """`neighbours` with the list read once per request: the decide view and the next
    review's page both ask, about two reviews of the same list."""
    cache = request.__dict__.setdefault("_stepwise_queue_rows", {})
    rows = cache.get(f)
    if rows is not None:
        rows = _as_listed_for(f, rows, pk)
    if rows is None or pk not in [r[0] for r in rows]:
        rows = cache[f] = list_rows(request.user, f, pk)
    return neighbours_in(request.user, rows, pk)


def _as_listed_for(f: selectors.InboxFilter, rows: list[Row], pk: int) -> list[Row]:
    """The cached rows as `list_rows(f, pk)` would read them. They were read for another
    review, kept in its place whatever its status: once it is decided, the next review's
    page must not count it, or "3 of 10" becomes "4 of 10" where a reload says "3 of 9"."""
    shown = _statuses_shown(f)
    return [r for r in rows if r[0] == pk or shown is None or r[1] in shown]


def _statuses_shown(f: selectors.InboxFilter) -> tuple[str, ...] | None:
    """The statuses the list `f` shows (None: every status), as `selectors.queue_rows`
    filters them."""
    if f.status == "open":
        return tuple(ReviewRequest.OPEN)
    if f.status in ReviewRequest.Status.values:
        return (f.status,)
    return None


Row = tuple[int, str, str, int | None]


def neighbours(user: AbstractBaseUser, f: selectors.InboxFilter, pk: int) -> Neighbours:
    """Where `j`, `k` and "decide, then next" lead from review `pk` in the list `f` (one
    query for the list, one for the user's groups)."""
    return neighbours_in(user, list_rows(user, f, pk), pk)


def list_rows(user: AbstractBaseUser, f: selectors.InboxFilter, pk: int) -> list[Row]:
    """The inbox's list for `f` (its first WINDOW rows), plus the current review: after it
    is decided its place is still known."""
    return selectors.queue_rows(user, f, pk, WINDOW)


def neighbours_in(user: AbstractBaseUser, rows: list[Row], pk: int) -> Neighbours:
    pks = [r[0] for r in rows]
    if pk not in pks:
        return Neighbours(None, pks[0] if pks else None, _first_open(user, rows, pk), None,
                          len(pks))
    i = pks.index(pk)
    after, before = rows[i + 1:], rows[:i]
    return Neighbours(
        previous=pks[i - 1] if i > 0 else None,
        next=pks[i + 1] if i + 1 < len(pks) else None,
        next_open=_first_open(user, after + before, pk),
        position=i + 1,
        total=len(pks),
    )


def _first_open(user: AbstractBaseUser, rows: list[Row], current: int) -> int | None:
    override = user.has_perm(OVERRIDE_CLAIM)
    groups = group_names(user)
    for pk, status, assignee, claimed_by in rows:
        if pk == current or status not in ReviewRequest.OPEN:
            continue
        if claimed_by is not None and claimed_by != user.pk and not override:
            continue
        if assignee and assignee != user.get_username() and assignee not in groups \
                and not override:
            continue
        return pk
    return None
