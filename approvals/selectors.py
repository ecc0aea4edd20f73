"""Reads for the pages: querysets with the joins that keep each page's query count constant."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connection
from django.db.models import Case, Exists, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from approvals import rowread
from approvals.access import group_names
from approvals.models import Decision, ReviewRequest
from approvals.tree import Link, TreeRow
from orchestration.checkpoint.base import CheckpointConfig, CheckpointTuple
from orchestration.checkpoint.namespaces import node_of
from orchestration.runtime.healing import AUTO_RESUMED, NEEDS_OPS
from orchestration.runtime.leases import unpicked_runs
from orchestration.runtime.models import Checkpoint, Event, Run, RunOutput, Thread
from orchestration.runtime.registry import get_graph
from orchestration.runtime.savers import DjangoCheckpointSaver
from orchestration.runtime.thread_search import threads_matching

# ---------------------------------------------------------------- inbox


@dataclass(frozen=True, slots=True)
class InboxFilter:
    graph: str = ""
    status: str = "open"  # "open" = pending or claimed; or one ReviewRequest.Status value
    assignee: str = ""  # "", "mine" or "unassigned"


def review_list(user: AbstractBaseUser, f: InboxFilter) -> QuerySet[ReviewRequest]:
    """Oldest first, overdue open reviews before all others."""
    overdue = Case(
        When(status__in=ReviewRequest.OPEN, due_at__lt=timezone.now(), then=Value(0)),
        default=Value(1),
    )
    return review_filtered(user, f).order_by(overdue, "created_at", "pk")


def review_filtered(user: AbstractBaseUser, f: InboxFilter) -> QuerySet[ReviewRequest]:
    """The inbox's rows for filter `f`, unordered."""
    qs = ReviewRequest.objects.select_related("thread", "claimed_by")
    if f.status == "open":
        qs = qs.filter(status__in=ReviewRequest.OPEN)
    elif f.status in ReviewRequest.Status.values:
        qs = qs.filter(status=f.status)
    if f.graph:
        qs = qs.filter(thread__graph_name=f.graph)
    if f.assignee == "mine":
        groups = list(user.groups.values_list("name", flat=True))
        qs = qs.filter(
            Q(claimed_by=user) | Q(assignee=user.get_username()) | Q(assignee__in=groups)
        )
    elif f.assignee == "unassigned":
        qs = qs.filter(assignee="", claimed_by__isnull=True)
    return qs


@dataclass(frozen=True, slots=True)
class InboxRow:
    """What the inbox shows of one review (`inbox_rows`), read by `review_page`."""

    pk: int
    node: str
    title: str
    status: str
    assignee: str
    claimed_by_id: int | None
    claimed_by_name: str  # "" when nobody claimed it
    created_at: dt.datetime
    due_at: dt.datetime | None
    thread_id: str  # the thread's public id (its URL)
    thread_title: str
    graph_name: str


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of the inbox, keyset-paginated: `next_query` continues after its last row
    (an OFFSET would read and drop every earlier row; a COUNT would read them all)."""

    object_list: list[InboxRow]
    has_next: bool
    next_query: dict[str, str]
    is_first: bool

    @property
    def next_href(self) -> str:
        return "?" + urlencode(self.next_query)


class BadCursor(ValueError):
    pass


def inbox_cursor(section: str, review: InboxRow | ReviewRequest) -> str:
    return f"{section}.{review.created_at.timestamp():.6f}.{review.pk}"


def _parse_cursor(after: str) -> tuple[str, dt.datetime, int]:
    try:
        section, seconds, micros, pk = after.split(".")
        if section not in ("o", "n"):
            raise ValueError(section)
        at = dt.datetime.fromtimestamp(int(seconds), tz=dt.UTC).replace(microsecond=int(micros))
        return section, at, int(pk)
    except (ValueError, OverflowError) as exc:
        raise BadCursor(f"{after!r} is not an inbox position") from exc


def review_page(user: AbstractBaseUser, f: InboxFilter, after: str = "",
                size: int = 50) -> InboxPage:
    """Overdue open reviews first, then the others, each oldest first (as `review_list`),
    `size` rows after the cursor `after`. Raises BadCursor for a cursor it did not make.

    Every part of its one statement is an index range scan that stops after `size + 1` rows,
    so a page costs the same at row 10 and at row 10,000: the overdue ones by
    `review_status_due`, then one part per status by `review_inbox_order` (status,
    created_at, id), merged by the statement (a sort of those few rows). One `IN` over two
    statuses would make the database sort every open review for each page.

    The statements are fixed text with parameters, and the rows plain `InboxRow`s: the three
    ORM querysets this replaces (with their joins) cost more to compile and to turn into
    model instances than everything else the inbox does (about 8 of its 20 CPU-ms)."""
    section, at, pk = _parse_cursor(after) if after else ("o", None, 0)
    now = _db_time(timezone.now())
    where, params = inbox_where(user, f)
    # one index range scan per part, each stopping after `size + 1` rows, in one statement:
    # the database merges at most a few times `size + 1` rows and returns `size + 1`, where
    # one statement per part returned up to that many rows each (half of them dropped here)
    # and cost a round trip each
    parts: list[str] = []
    args: list[Any] = []
    # overdue: open and past due, of the statuses the filter shows
    overdue = [s for s in _statuses(f.status) if s in ReviewRequest.OPEN]
    if section == "o" and overdue:
        clauses = [*where, f"r.status IN ({', '.join(['%s'] * len(overdue))})", "r.due_at < %s"]
        _inbox_part(parts, args, 0, clauses, [*params, *overdue, now], at, pk, size + 1)
    for status in _statuses(f.status):
        clauses, part_args = [*where, "r.status = %s"], [*params, status]
        if status in ReviewRequest.OPEN:  # not the overdue ones (listed first)
            clauses.append("(r.due_at IS NULL OR r.due_at >= %s)")
            part_args.append(now)
        _inbox_part(parts, args, 1, clauses, part_args, at if section == "n" else None, pk,
                    size + 1)
    rows: list[tuple[str, InboxRow]] = []
    if parts:
        with connection.cursor() as cursor:
            # by position: the columns' names repeat (`title`); 1 the part, 9 created_at, 2 id
            cursor.execute(f"SELECT * FROM ({' UNION ALL '.join(parts)}) page "  # noqa: S608
                           "ORDER BY 1, 9, 2 LIMIT %s", [*args, size + 1])
            rows = [("o" if part == 0 else "n", _inbox_row(row))
                    for part, *row in cursor.fetchall()]
    has_next = len(rows) > size
    rows = rows[:size]
    query = {k: v for k, v in (("status", f.status), ("graph", f.graph),
                                ("assignee", f.assignee)) if v}
    if has_next:
        query["after"] = inbox_cursor(*rows[-1])
    return InboxPage([r for _, r in rows], has_next, query if has_next else {}, not after)


def inbox_where(user: AbstractBaseUser, f: InboxFilter) -> tuple[list[str], list[Any]]:
    """`review_filtered`'s conditions but the status, as SQL over `r` (the review), `t` (its
    thread, joined by `_inbox_sql`); the statuses are the caller's (one index range each)."""
    clauses: list[str] = []
    params: list[Any] = []
    if f.graph:
        clauses.append("t.graph_name = %s")
        params.append(f.graph)
    if f.assignee == "mine":
        groups = sorted(group_names(user))
        mine = ["r.claimed_by_id = %s", "r.assignee = %s"]
        params += [user.pk, user.get_username()]
        if groups:
            mine.append(f"r.assignee IN ({', '.join(['%s'] * len(groups))})")
            params += groups
        clauses.append(f"({' OR '.join(mine)})")
    elif f.assignee == "unassigned":
        clauses.append("r.assignee = '' AND r.claimed_by_id IS NULL")
    return clauses, params


def _inbox_part(parts: list[str], args: list[Any], part: int, clauses: list[str],
                params: list[Any], at: dt.datetime | None, pk: int, limit: int) -> None:
    """Adds to `parts` (and its parameters to `args`) one part of the inbox's statement: its
    rows for `clauses` after the keyset (`at`, `pk`) if any, oldest first, at most `limit`,
    each led by `part` (the section: 0 overdue, 1 the others)."""
    if at is not None:
        clauses = [*clauses, "(r.created_at > %s OR (r.created_at = %s AND r.id > %s))"]
        params = [*params, _db_time(at), _db_time(at), pk]
    # wrapped: SQLite takes no ORDER BY or LIMIT on a UNION's own members
    parts.append(f"SELECT * FROM ({_inbox_sql(part)} WHERE {' AND '.join(clauses)} "  # noqa: S608
                 f"ORDER BY r.created_at, r.id LIMIT %s) part{len(parts)}")
    args += [*params, limit]


def _inbox_row(row: Any) -> InboxRow:
    (pk, node, title, status, assignee, claimed_by_id, claimed_by_name, created, due,
     thread_id, thread_title, graph_name) = row
    return InboxRow(pk=pk, node=node, title=title, status=status, assignee=assignee,
                    claimed_by_id=claimed_by_id, claimed_by_name=claimed_by_name or "",
                    created_at=_aware(created), due_at=_aware(due) if due else None,
                    thread_id=thread_id, thread_title=thread_title, graph_name=graph_name)


@dataclass(frozen=True, slots=True)
class ThreadRef:
    thread_id: str  # the thread's public id


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """A review without its decision, as the API lists it: `shapes.review_dict` reads it as
    it reads a `ReviewRequest` (`actions`, `data` and `schema` are the model's own, on the
    fields they read), without a model instance per row and per joined thread. `payload`
    holds only the keys the list shows (`_LISTED_KEYS`)."""

    pk: int
    thread: ThreadRef
    status: str
    title: str
    kind: str
    payload: Any
    assignee: str
    created_at: dt.datetime
    due_at: dt.datetime | None
    Kind: ClassVar[type[ReviewRequest.Kind]] = ReviewRequest.Kind

    actions = property(ReviewRequest.actions.fget)  # type: ignore[attr-defined]
    data = property(ReviewRequest.data.fget)  # type: ignore[attr-defined]
    schema = property(ReviewRequest.schema.fget)  # type: ignore[attr-defined]


def review_rows(f: InboxFilter, after: tuple[dt.datetime, int] | None,
                limit: int) -> list[ReviewRow]:
    """Reviews of filter `f` (its status and graph, not its assignee; no "decided" ones: no
    decision is read) oldest first, after the keyset `after` (created_at, pk), at most
    `limit`: what `review_filtered(...).order_by("created_at", "pk")`, filtered past the
    cursor as `api.cursors.page` filters it, reads; from a fixed statement."""
    statuses = _statuses(f.status)
    assert ReviewRequest.Status.DECIDED not in statuses, "decisions are not read here"
    clauses: list[str] = [f"r.status IN ({', '.join(['%s'] * len(statuses))})"]
    params: list[Any] = [*statuses]
    if f.graph:
        clauses.append("t.graph_name = %s")
        params.append(f.graph)
    if after is not None:
        clauses.append("(r.created_at > %s OR (r.created_at = %s AND r.id > %s))")
        params += [_db_time(after[0]), _db_time(after[0]), after[1]]
    with connection.cursor() as cursor:
        cursor.execute(f"{_review_rows_sql()} WHERE {' AND '.join(clauses)} "
                       "ORDER BY r.created_at, r.id LIMIT %s", [*params, limit])
        rows = cursor.fetchall()

    created_of, due_of = (rowread.field_converter(ReviewRequest, name)
                          for name in ("created_at", "due_at"))
    return [ReviewRow(pk=pk, thread=ThreadRef(thread_id), status=status, title=title,
                      kind=kind, payload=_listed_payload(parts), assignee=assignee,
                      created_at=created_of(created), due_at=due_of(due))
            for pk, thread_id, status, title, kind, parts, assignee, created, due in rows]


# The payload keys a listed review shows (shapes.review_dict reads no other): the statement
# reads them as one JSON array, not the whole payload (whose data_schema, title, ... were
# nearly half of what was decoded per row). A subtree decodes to what it is in the decoded
# whole (the database renders it from the same stored value); a missing key reads as null,
# which every reader of these keys takes as absent.
_LISTED_KEYS = ("data", "schema", "actions", "description")


def _listed_payload(parts: str) -> dict[str, Any]:
    return dict(zip(_LISTED_KEYS, json.loads(parts), strict=True))


@functools.cache
def _review_rows_sql() -> str:
    q = connection.ops.quote_name
    # JSON text of an array of the payload's _LISTED_KEYS values (SQLite's json_array keeps
    # the subtrees `->` gives as JSON, not as strings)
    array = "jsonb_build_array" if connection.vendor == "postgresql" else "json_array"
    parts = ", ".join(f"r.payload -> '{key}'" for key in _LISTED_KEYS)
    return ("SELECT r.id, t.thread_id, r.status, r.title, r.kind, "  # noqa: S608
            f"{array}({parts}), r.assignee, r.created_at, r.due_at "
            f"FROM {q(ReviewRequest._meta.db_table)} r "
            f"INNER JOIN {q(Thread._meta.db_table)} t ON t.id = r.thread_id")


@functools.cache
def _inbox_sql(part: int) -> str:
    """The inbox row's columns, led by `part` (a literal integer), and joins (`r` the review,
    `t` its thread, `u` who claimed it); only quoted table and column names from the models
    and the integer go into the text."""
    q = connection.ops.quote_name
    user = get_user_model()._meta
    username = q(user.get_field(user.model.USERNAME_FIELD).column)
    return (
        f"SELECT {int(part)}, r.id, r.node, r.title, r.status, r.assignee, "  # noqa: S608
        "r.claimed_by_id, "
        f"u.{username}, r.created_at, r.due_at, t.thread_id, t.title, t.graph_name "
        f"FROM {q(ReviewRequest._meta.db_table)} r "
        f"INNER JOIN {q(Thread._meta.db_table)} t ON t.id = r.thread_id "
        f"LEFT OUTER JOIN {q(user.db_table)} u ON u.id = r.claimed_by_id"
    )


def _db_time(value: dt.datetime) -> Any:
    """A timestamp as the ORM sends it to this database (SQLite: UTC text, as stored)."""
    return connection.ops.adapt_datetimefield_value(value)


@functools.cache
def _decision_joins() -> tuple[rowread.Join, ...]:
    return (rowread.Join(Decision, "d"), rowread.Join(get_user_model(), "u", "decided_by"))


def _decision_sql(extra: str = "") -> str:
    """The decision of one review with its author, in fixed text; `extra` more columns."""
    q = connection.ops.quote_name
    return (f"SELECT {rowread.select(_decision_joins())}{extra} "  # noqa: S608
            f"FROM {q(Decision._meta.db_table)} d LEFT OUTER JOIN "
            f"{q(get_user_model()._meta.db_table)} u ON u.id = d.decided_by_id "
            "WHERE d.review_id = %s")


def review_decision(review_pk: int) -> Decision | None:
    """The decision of review `review_pk` with its author, as
    `Decision.objects.select_related("decided_by").filter(review=...).first()` reads it, from
    a fixed statement (approvals.rowread): a decided review's page shows it on every view."""
    with connection.cursor() as cursor:
        cursor.execute(_decision_sql(), [review_pk])
        row = cursor.fetchone()  # one at most: a review has one decision (unique)
    return rowread.build(_decision_joins(), row) if row else None  # type: ignore[return-value]


def decision_with_reanswers(review_pk: int) -> tuple[Decision | None, list[ReviewRequest]]:
    """`review_decision(review_pk)` and, when it has one, `reanswers(review_pk)`: what a
    decided review's page shows under its decision. Whether any review re-answers it comes
    with the decision (an index probe in the same statement), so the common page, a decision
    nobody re-answered, costs one round trip, not two."""
    reviews = connection.ops.quote_name(ReviewRequest._meta.db_table)
    reanswered = f", EXISTS (SELECT 1 FROM {reviews} a WHERE a.reanswer_of_id = d.review_id)"  # noqa: S608
    sql = _decision_sql(reanswered)
    with connection.cursor() as cursor:
        cursor.execute(sql, [review_pk])
        row = cursor.fetchone()  # one at most: a review has one decision (unique)
    if row is None:
        return None, []
    decision = rowread.build(_decision_joins(), row[:-1])
    return decision, reanswers(review_pk) if row[-1] else []  # type: ignore[return-value]


@functools.cache
def _reanswer_joins() -> tuple[rowread.Join, ...]:
    return (rowread.Join(ReviewRequest, "r"), rowread.Join(Decision, "d", "decision"),
            rowread.Join(get_user_model(), "u", "decided_by", via="d"))


def reanswers(review_pk: int) -> list[ReviewRequest]:
    """The reviews that re-answer review `review_pk` ("decide differently"), each with its
    decision and the decision's author, as `review.reanswers.select_related(
    "decision__decided_by")` reads them, from a fixed statement (approvals.rowread)."""
    q = connection.ops.quote_name
    sql = (f"SELECT {rowread.select(_reanswer_joins())} "  # noqa: S608
           f"FROM {q(ReviewRequest._meta.db_table)} r "
           f"LEFT OUTER JOIN {q(Decision._meta.db_table)} d ON d.review_id = r.id "
           f"LEFT OUTER JOIN {q(get_user_model()._meta.db_table)} u ON u.id = d.decided_by_id "
           "WHERE r.reanswer_of_id = %s ORDER BY r.id")
    with connection.cursor() as cursor:
        cursor.execute(sql, [review_pk])
        rows = cursor.fetchall()
    return [rowread.build(_reanswer_joins(), row) for row in rows]  # type: ignore[misc]


def queue_rows(user: AbstractBaseUser, f: InboxFilter, pk: int,
               limit: int) -> list[tuple[int, str, str, int | None]]:
    """(id, status, assignee, claimed_by_id) of the first `limit` reviews of `review_list`'s
    list for `f`, plus review `pk` in its place whatever its status (approvals.queue).

    Fixed text, as the inbox page: this runs on every review page and after every decision,
    and the ORM queryset cost more to compile than its 500 rows cost to read."""
    where, params = inbox_where(user, f)
    statuses = _statuses(f.status) if f.status == "open" or f.status in \
        ReviewRequest.Status.values else ()
    if statuses:
        where.append(f"(r.status IN ({', '.join(['%s'] * len(statuses))}) OR r.id = %s)")
        params += [*statuses, pk]
    open_ = ", ".join(["%s"] * len(ReviewRequest.OPEN))
    q = connection.ops.quote_name
    # the thread only for the graph filter (`inbox_where`'s only use of `t`): every review
    # has its thread (a foreign key, not null), and joining all the open reviews' threads
    # was about half of this statement's time at 400 open reviews on PostgreSQL
    thread = (f"INNER JOIN {q(Thread._meta.db_table)} t ON t.id = r.thread_id "
              if f.graph else "")
    sql = (f"SELECT r.id, r.status, r.assignee, r.claimed_by_id "  # noqa: S608
           f"FROM {q(ReviewRequest._meta.db_table)} r {thread}"
           f"{'WHERE ' + ' AND '.join(where) if where else ''} "
           f"ORDER BY CASE WHEN r.status IN ({open_}) AND r.due_at < %s THEN 0 ELSE 1 END, "
           "r.created_at, r.id LIMIT %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *ReviewRequest.OPEN, _db_time(timezone.now()), limit])
        return [tuple(row) for row in cursor.fetchall()]  # type: ignore[misc]


def _statuses(status: str) -> tuple[str, ...]:
    if status == "open":
        return tuple(ReviewRequest.OPEN)
    if status in ReviewRequest.Status.values:
        return (status,)
    return tuple(ReviewRequest.Status.values)


def review_counts(graph: str = "") -> dict[str, int]:
    """Reviews per status (one statement of fixed text: the ORM's aggregate of five filtered
    counts cost ~2 CPU-ms to compile, a tenth of the inbox)."""
    sql, params = _counts_sql(graph)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return _counts((status, n) for _, status, n in cursor.fetchall())


def graph_names() -> list[str]:
    """The graphs threads ran, by name (fixed text, as `review_counts`).

    One probe of `thread_graph_name` per name, each for the first name after the last one:
    a few index reads however many threads there are (a DISTINCT read every thread, on every
    inbox page)."""
    with connection.cursor() as cursor:
        cursor.execute(f"{_graph_names_cte()} SELECT name FROM names "  # noqa: S608
                       "WHERE name IS NOT NULL ORDER BY name")
        return [name for (name,) in cursor.fetchall()]


def inbox_counts_and_graphs(graph: str = "") -> tuple[dict[str, int], list[str]]:
    """`review_counts(graph)` and `graph_names()` in one statement (the inbox page shows
    both): a round trip fewer on every inbox page."""
    counts_sql, params = _counts_sql(graph)
    with connection.cursor() as cursor:
        # by position: 1 which part (0 the counts, 1 the names), 2 the status or name
        cursor.execute(f"{_graph_names_cte()} {counts_sql} UNION ALL "  # noqa: S608
                       "SELECT 1, name, 0 FROM names WHERE name IS NOT NULL ORDER BY 1, 2",
                       params)
        rows = cursor.fetchall()
    return (_counts([(key, n) for part, key, n in rows if part == 0]),
            [name for part, name, _ in rows if part == 1])


def _counts_sql(graph: str) -> tuple[str, list[Any]]:
    """The statement of (0, status, count) rows per status, of `graph`'s threads if any."""
    q = connection.ops.quote_name
    sql = f"SELECT 0, r.status, COUNT(*) FROM {q(ReviewRequest._meta.db_table)} r"  # noqa: S608
    params: list[Any] = []
    if graph:
        sql += f" INNER JOIN {q(Thread._meta.db_table)} t ON t.id = r.thread_id " \
               "WHERE t.graph_name = %s"
        params.append(graph)
    return f"{sql} GROUP BY r.status", params


def _counts(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    counts = dict.fromkeys(ReviewRequest.Status.values, 0)
    counts.update(rows)
    counts["open"] = counts["pending"] + counts["claimed"]
    return counts


@functools.cache
def _graph_names_cte() -> str:
    """`names`: the graph names of threads, one index probe each (and a NULL after them)."""
    table = connection.ops.quote_name(Thread._meta.db_table)

    def first_after(bound: str) -> str:
        return (f"(SELECT graph_name FROM {table} WHERE graph_name > {bound} "  # noqa: S608
                "ORDER BY graph_name LIMIT 1)")

    return (f"WITH RECURSIVE names(name) AS (SELECT {first_after("''")} "  # noqa: S608
            f"UNION ALL SELECT {first_after('names.name')} FROM names "
            "WHERE names.name IS NOT NULL)")


# ---------------------------------------------------------------- threads


def thread_list(search: str = "", status: str = "", graph: str = "") -> QuerySet[Thread]:
    qs = Thread.objects.select_related("started_by").order_by("-updated_at", "-pk")
    if search:
        qs = threads_matching(qs, search)
    if status:
        qs = qs.filter(status=status)
    if graph:
        qs = qs.filter(graph_name=graph)
    return qs


# The closed reviews a thread's page lists: the latest ones. A long-lived thread had
# thousands (5,000 reviews: a 750 KB page drawn in 600 ms, again at every live update).
RECENT_REVIEWS = 20


def thread_reviews(thread: Thread) -> tuple[list[ReviewRequest], int]:
    """The thread's open reviews and its RECENT_REVIEWS latest others, oldest first; and how
    many others are left out (from `review_thread_created`: the thread's rows only)."""
    rows = ReviewRequest.objects.filter(thread=thread).select_related(
        "claimed_by", "decision__decided_by")
    open_ = list(rows.filter(status__in=ReviewRequest.OPEN))
    closed = rows.exclude(status__in=ReviewRequest.OPEN)
    recent = list(closed.order_by("-created_at", "-pk")[:RECENT_REVIEWS])
    hidden = closed.count() - len(recent) if len(recent) == RECENT_REVIEWS else 0
    shown = sorted([*open_, *recent], key=lambda r: (r.created_at, r.pk))
    return shown, hidden


# one per superstep: the checkpoint tree already shows them
HISTORY_QUIET = ("run_progress", "run_output")


@dataclass(frozen=True, slots=True)
class HistoryItem:
    at: dt.datetime
    kind: str
    actor: str
    text: str
    reason: str = ""
    review_pk: int | None = None  # a decision's review (its link)

    # What `at|date:'c'` and `at|date:"m-d H:i:s"` printed in _history.html (the date filter
    # turns `at` into the current time zone first): each item's two times went through the
    # filter machinery, eight filter calls for a history of four on every review page.
    @property
    def at_iso(self) -> str:
        return timezone.localtime(self.at).isoformat()

    @property
    def at_short(self) -> str:
        return timezone.localtime(self.at).strftime("%m-%d %H:%M:%S")


def thread_history(thread: Thread, limit: int = 200) -> list[HistoryItem]:
    """Events and decisions of a thread, newest first: the columns shown, in one statement.

    The review page shows it on every request. Whole rows cost a fifth of that page (users
    and reviews with their payloads, built to lend a name and a title); two ORM queries of
    the columns then still cost more to build and compile than everything else the history
    does (about 2 of the page's 13 CPU-ms), so it is one statement of fixed text."""
    labels = dict(Decision.Action.choices)
    events: list[tuple[int, HistoryItem]] = []
    decisions: list[HistoryItem] = []
    # An automatic resume records its attempt (`run_auto_resumed`, what the stall policy
    # counts) and then re-queues the run (`run_requeued`), with the same reason: one line.
    auto_resumes: set[tuple[int | None, str]] = set()
    requeues: dict[int, tuple[int | None, str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(_history_sql(), [thread.pk, *HISTORY_QUIET, limit, thread.pk, limit])
        for branch, seq, at, kind, actor, reason, data, run_id, review_pk, title, node, text \
                in cursor.fetchall():
            at = _aware(at)
            if branch == 0:
                if kind == AUTO_RESUMED:
                    auto_resumes.add((run_id, reason or ""))
                elif kind == "run_requeued":
                    requeues[seq] = (run_id, reason or "")
                data = json.loads(data) if data else {}
                events.append((seq, HistoryItem(
                    at=at, kind=kind, actor=str(actor or ""),
                    text=_event_text(kind, data, run_id), reason=reason or "")))
            else:
                decisions.append(HistoryItem(
                    at=at, kind="decision", actor=str(actor or ""),
                    text=f"{labels.get(kind, kind)} — {title or node}",
                    reason=reason or text or "", review_pk=review_pk))
    folded = {seq for seq, attempt in requeues.items() if attempt in auto_resumes}
    events = [event for event in events if event[0] not in folded]
    # as the two queries this replaces: events newest first, then decisions, merged by time
    events.sort(key=lambda e: e[0], reverse=True)
    decisions.sort(key=lambda i: i.at, reverse=True)
    items = [item for _, item in events] + decisions
    items.sort(key=lambda i: i.at, reverse=True)
    return items[:limit]


@functools.cache
def _history_sql() -> str:
    """Events (branch 0) and decisions (branch 1) of thread %s, each newest first and at
    most %s of them, in one UNION ALL (SQLite and PostgreSQL alike: the NULLs standing in
    for the other branch's columns are typed, and the event's JSON is read as text)."""
    q = connection.ops.quote_name
    user = get_user_model()._meta
    username = q(user.get_field(user.model.USERNAME_FIELD).column)
    event, decision, review = Event._meta.db_table, Decision._meta.db_table, \
        ReviewRequest._meta.db_table
    quiet = ", ".join(["%s"] * len(HISTORY_QUIET))
    # only quoted table and column names from the models go into the text; values are params
    return (
        "SELECT * FROM (SELECT 0 AS branch, e.id AS seq, e.created_at, e.kind, "  # noqa: S608
        f"u.{username}, e.reason, CAST(e.data AS TEXT), e.run_id, "
        f"CAST(NULL AS BIGINT) AS review_id, "
        f"NULL AS title, NULL AS node, "
        f"NULL AS text FROM {q(event)} e LEFT OUTER JOIN {q(user.db_table)} u "
        f"ON u.id = e.actor_id WHERE e.thread_id = %s AND e.kind NOT IN ({quiet}) "
        f"ORDER BY e.id DESC LIMIT %s) events "
        f"UNION ALL SELECT * FROM (SELECT 1, d.id, d.decided_at, d.action, u.{username}, "
        f"d.comment, NULL, CAST(NULL AS BIGINT), d.review_id, r.title, r.node, d.text "
        f"FROM {q(decision)} d "
        f"INNER JOIN {q(review)} r ON r.id = d.review_id LEFT OUTER JOIN "
        f"{q(user.db_table)} u ON u.id = d.decided_by_id WHERE r.thread_id = %s "
        f"ORDER BY d.decided_at DESC LIMIT %s) decisions"
    )


def _aware(value: Any) -> dt.datetime:
    """A timestamp from a raw statement: SQLite gives text (or a naive datetime) in UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)


def _event_text(kind: str, data: Any, run_id: int | None) -> str:
    data = data if isinstance(data, Mapping) else {}
    detail = data.get("message") or data.get("error") or ""
    label = kind.replace("_", " ").replace(".", " ")
    run = f" (run {run_id})" if run_id else ""
    return f"{label}{run}{': ' + str(detail) if detail else ''}"


def tree_links(thread: Thread) -> list[Link]:
    """Every checkpoint's id, parent and step, in one query of three small columns: all the
    layout needs (labels are loaded for the visible rows only, `tree_details`)."""
    raw = list(
        Checkpoint.objects.filter(thread=thread, checkpoint_ns="")  # subgraphs fold apart
        .values_list("pk", "checkpoint_id", "parent_id", "step")
    )
    ids = {pk: cid for pk, cid, _, _ in raw}
    return [Link(cid, ids.get(parent) if parent else None, step) for _, cid, parent, step in raw]


def checkpoints_mark(thread: Thread) -> tuple[int, int, str]:
    """How many checkpoints the thread has (every namespace), and the pk and id of its newest
    row: two looks at the thread's index entries. Adding or removing a row changes it, and so
    does a pk used again for another checkpoint (SQLite, after the newest row is deleted)."""
    rows = Checkpoint.objects.filter(thread=thread)
    newest = rows.order_by("-pk").values_list("pk", "checkpoint_id").first()
    if newest is None:
        return 0, 0, ""
    return rows.count(), newest[0], newest[1]


def links_from(thread: Thread, pk: int) -> list[tuple[int, str, Link]]:
    """(pk, namespace, link) of the thread's checkpoints from row `pk` on, every namespace,
    in pk order (the caller counts them against `checkpoints_mark`)."""
    rows = Checkpoint.objects.filter(thread=thread, pk__gte=pk).order_by("pk").values_list(
        "pk", "checkpoint_ns", "checkpoint_id", "parent__checkpoint_id", "step"
    )
    return [(row_pk, ns, Link(cid, parent, step)) for row_pk, ns, cid, parent, step in rows]


def tree_details(thread: Thread, checkpoint_ids: Collection[str]) -> dict[str, TreeRow]:
    """Labels of the given checkpoints (one query, however long the thread)."""
    rows = (
        Checkpoint.objects.filter(thread=thread, checkpoint_id__in=list(checkpoint_ids))
        .values_list("checkpoint_id", "parent__checkpoint_id", "step", "source", "created_at",
                     "created_by__username", "extra", "written_by")
    )
    out = {}
    for cid, parent, step, source, created_at, username, extra, written_by in rows:
        extra = extra if isinstance(extra, Mapping) else {}
        actor = username or str(extra.get("user") or extra.get("reviewer") or "")
        out[cid] = TreeRow(id=cid, parent_id=parent, step=step, source=source,
                           node=", ".join(written_by or ()), time=created_at, actor=actor)
    return out


@dataclass(frozen=True, slots=True)
class StreamedPart:
    """Consecutive chunks a run's nodes streamed: text runs joined, anything else shown as
    data, each under the subgraph path that wrote it ("" for the thread's graph)."""

    namespace: str
    text: str
    data: Any = None


def run_output(thread: Thread) -> tuple[int | None, list[StreamedPart]]:
    """The latest run that streamed output, and its output as parts, in order."""
    latest = (
        RunOutput.objects.filter(run__thread=thread).order_by("-run_id")
        .values_list("run_id", flat=True).first()
    )
    if latest is None:
        return None, []
    parts: list[StreamedPart] = []
    rows = RunOutput.objects.filter(run_id=latest).order_by("seq").values_list("namespace", "data")
    for namespace, data in rows:
        if isinstance(data, str):
            last = parts[-1] if parts else None
            if last is not None and last.data is None and last.namespace == namespace:
                parts[-1] = StreamedPart(namespace, last.text + data)
            else:
                parts.append(StreamedPart(namespace, data))
        else:
            shown = json.dumps(data, ensure_ascii=False, sort_keys=True)
            parts.append(StreamedPart(namespace, "", shown))
    return latest, parts


@dataclass(frozen=True, slots=True)
class SubgraphGroup:
    """A subgraph's checkpoints, folded under the root checkpoint its node ran from."""

    namespace: str
    parent_checkpoint: str
    rows: tuple[TreeRow, ...]


def subgraph_rows(thread: Thread) -> QuerySet[Checkpoint, tuple[Any, ...]]:
    """The thread's subgraph checkpoints, oldest first: read from their own partial index
    (`checkpoint_subgraph_rows`), never from every row of the thread."""
    return (
        Checkpoint.objects.filter(thread=thread).exclude(checkpoint_ns="")
        .order_by("checkpoint_id")
        .values_list(
            "checkpoint_id", "checkpoint_ns", "parent__checkpoint_id", "step", "source",
            "created_at", "extra", "written_by",
        )
    )


def subgraph_groups(thread: Thread) -> dict[str, list[SubgraphGroup]]:
    """Root checkpoint id -> the subgraph runs that started from it (each a chain of its own
    checkpoints, oldest first)."""
    rows = subgraph_rows(thread)
    groups: dict[tuple[str, str, str], list[TreeRow]] = {}
    for cid, ns, parent, step, source, created_at, extra, written_by in rows:
        extra = extra if isinstance(extra, Mapping) else {}
        under = str(extra.get("stepwise_parent_checkpoint") or "")
        chain = str(extra.get("stepwise_parent_task") or "")
        groups.setdefault((under, ns, chain), []).append(
            TreeRow(cid, parent, step, source, ", ".join(written_by), created_at, "")
        )
    out: dict[str, list[SubgraphGroup]] = {}
    for (under, ns, _), members in groups.items():
        out.setdefault(under, []).append(SubgraphGroup(ns, under, tuple(members)))
    return out


@dataclass(frozen=True, slots=True)
class Fold:
    """A subgraph run to show folded: its checkpoints, each with the runs nested in it, and
    the node that ran it with the step it ran in (one after the checkpoint it hangs from:
    a step's tasks start from the previous step's checkpoint)."""

    namespace: str
    rows: tuple[tuple[TreeRow, tuple[Fold, ...]], ...]
    node: str = ""
    step: int = 0


def subgraph_folds(thread: Thread) -> list[tuple[TreeRow, list[Fold]]]:
    """The root checkpoints that ran subgraphs, each with its subgraph runs folded under it
    (two queries: the subgraphs' rows, then the labels of the root rows they hang from)."""
    groups = subgraph_groups(thread)
    if not groups:
        return []

    def fold(group: SubgraphGroup, under_step: int) -> Fold:
        return Fold(
            group.namespace,
            tuple((row, tuple(fold(g, row.step) for g in groups.get(row.id, ())))
                  for row in group.rows),
            # "outer|inner": the subgraph run by node `inner` inside the subgraph `outer`
            node=node_of(group.namespace),
            step=under_step + 1,
        )

    roots = tree_details(thread, list(groups))
    return [(roots[cid], [fold(g, roots[cid].step) for g in groups[cid]])
            for cid in sorted(roots)]


def open_review_checkpoints(thread: Thread) -> set[str]:
    return set(
        ReviewRequest.objects.filter(thread=thread, status__in=ReviewRequest.OPEN).values_list(
            "checkpoint_id", flat=True
        )
    )


COMPARE_CHOICES = 25


def compare_choices(thread: Thread, query: str = "") -> list[tuple[str, int, str]]:
    """At most COMPARE_CHOICES checkpoints to compare with, newest first: those whose step is
    `query` (a number) or whose id starts with it, or whose source is it; without a query the
    ones worth comparing with (inputs, forks and updates) and the newest."""
    qs = Checkpoint.objects.filter(thread=thread, checkpoint_ns="").order_by("-checkpoint_id")
    query = query.strip()
    if query:
        match = Q(checkpoint_id__startswith=query) | Q(source=query)
        if query.isdigit():
            match |= Q(step=int(query))
        qs = qs.filter(match)
    else:
        notable = list(
            qs.filter(source__in=("input", "fork", "update"))
            .values_list("checkpoint_id", "step", "source")[:COMPARE_CHOICES // 2]
        )
        seen = {cid for cid, _, _ in notable}
        newest = [c for c in qs.values_list("checkpoint_id", "step", "source")[:COMPARE_CHOICES]
                  if c[0] not in seen]
        both = notable + newest[:COMPARE_CHOICES - len(notable)]
        return sorted(both, key=lambda c: c[0], reverse=True)
    return list(qs.values_list("checkpoint_id", "step", "source")[:COMPARE_CHOICES])


class UnreadableCheckpoint(Exception):
    """A stored checkpoint cannot be decoded (a damaged row or blob). Pages show this message
    where the checkpoint would be; the rest of the thread stays readable."""

    def __init__(self, thread: Thread, checkpoint_id: str, parent_id: str, error: Exception):
        self.thread_id = thread.thread_id
        self.checkpoint_id = checkpoint_id
        self.parent_id = parent_id
        self.error = f"{type(error).__name__}: {error}"
        instead = (
            f"fork from its parent {parent_id} to continue the thread" if parent_id
            else "start the thread again"
        )
        super().__init__(
            f"Checkpoint {checkpoint_id} of thread {thread.thread_id} cannot be read: its stored "
            f"data is damaged ({self.error}). Pick another checkpoint in the tree, or {instead}; "
            "ask an admin to restore the row from a backup."
        )


def get_checkpoint(
    thread: Thread, checkpoint_id: str | None, namespace: str = "",
    *, saver: DjangoCheckpointSaver | None = None,
) -> CheckpointTuple | None:
    """Read a checkpoint's values through the saver (the engine's view, not raw rows);
    `namespace` names a subgraph's checkpoints ("" the thread's own graph). Reads of related
    checkpoints can share a `saver` (its value cache: the fields they have in common).
    Raises UnreadableCheckpoint, naming it, when its stored data cannot be decoded."""
    try:
        return (saver or DjangoCheckpointSaver()).get_tuple(
            CheckpointConfig(thread.thread_id, checkpoint_id, namespace)
        )
    except DatabaseError:
        raise
    except Exception as exc:  # noqa: BLE001  any decoding failure means a damaged row
        rows = Checkpoint.objects.filter(thread=thread, checkpoint_ns=namespace).order_by(
            "-checkpoint_id"
        )
        if checkpoint_id:
            rows = rows.filter(checkpoint_id=checkpoint_id)
        cid, parent = rows.values_list("checkpoint_id", "parent__checkpoint_id").first() or (
            checkpoint_id or "?", None
        )
        raise UnreadableCheckpoint(thread, cid, parent or "", exc) from exc


def get_checkpoint_pair(
    thread: Thread, checkpoint_id: str | None, other_id: str | None = None,
) -> tuple[CheckpointTuple | None, CheckpointTuple | None]:
    """A checkpoint (None: the thread's head) and another to compare it with (None: its
    parent), read together: the values they share are fetched and decoded once (on a long
    thread, a list's whole append chain). Raises UnreadableCheckpoint, naming the damaged
    one, as `get_checkpoint` does."""
    rows = Checkpoint.objects.filter(thread=thread, checkpoint_ns="")
    found = (
        rows.filter(checkpoint_id=checkpoint_id) if checkpoint_id
        else rows.order_by("-checkpoint_id")
    ).values_list("checkpoint_id", "parent__checkpoint_id").first()
    if found is None:
        return None, None
    asked_id, parent_id = found
    other_id = other_id or parent_id
    saver = DjangoCheckpointSaver()
    try:
        read = saver.get_tuples(
            CheckpointConfig(thread.thread_id), [asked_id, *([other_id] if other_id else [])]
        )
    except DatabaseError:
        raise
    except Exception:  # noqa: BLE001  one of them is damaged: the reads apart name which
        read = {}
    asked = read.get(asked_id) or get_checkpoint(thread, asked_id, saver=saver)
    if not other_id:
        return asked, None
    return asked, read.get(other_id) or get_checkpoint(thread, other_id, saver=saver)


def state_types(thread: Thread) -> dict[str, Any]:
    """Field name -> declared type of the thread's graph state ({} if the graph is unknown)."""
    try:
        graph = get_graph(thread.graph_name)
    except Exception:  # noqa: BLE001  an unregistered graph: the fork itself will say so
        return {}
    return {name: spec.annotation for name, spec in graph.spec.schema.fields.items()}


def checkpoint_values(tup: CheckpointTuple | None) -> dict[str, Any]:
    return dict(tup.checkpoint.values) if tup is not None else {}


# ---------------------------------------------------------------- ops


@dataclass(frozen=True, slots=True)
class OpsFilter:
    status: str = "attention"  # "attention" (see `attention_pks`) or one Run.Status value


def ops_runs(f: OpsFilter, attention: list[int] | None = None) -> QuerySet[Run]:
    """`attention`: the `attention_pks()` the caller already read (they read the task
    queue)."""
    qs = Run.objects.select_related("thread", "requested_by")
    if f.status in ("attention", Run.Status.FAILED):
        # runs the sweeper gave up on come first: nothing else will move them (it fails
        # them); on the other tabs no run has given up, and the order comes from the index
        gave_up = Event.objects.filter(run=OuterRef("pk"), kind=NEEDS_OPS)
        qs = qs.annotate(needs_ops=Exists(gave_up)).order_by("-needs_ops", "created_at", "pk")
    else:
        qs = qs.annotate(needs_ops=Value(False)).order_by("created_at", "pk")
    if f.status == "attention":
        return qs.filter(pk__in=attention if attention is not None else attention_pks())
    if f.status == "stalled":
        return qs.filter(stalled_q())
    if f.status in Run.Status.values:
        return qs.filter(status=f.status)
    return qs


def attention_pks() -> list[int]:
    """The runs ops can act on, and nothing else: stalled ones (resume), failed ones that are
    still their thread's latest run (retry; an older failure was retried or forked past),
    and queued runs no task will pick up (`unpicked_runs`). Waiting runs belong to the
    reviewers' inbox, healthy running ones to their worker.

    Each set is read from its status's index (one statement), not by testing every run:
    as one filter over a table of 300,000 finished runs it cost the console 200 ms a page."""
    later = Run.objects.filter(thread=OuterRef("thread"), pk__gt=OuterRef("pk"))
    stalled = Run.objects.filter(status=Run.Status.STALLED).values_list("pk", flat=True)
    expired = Run.objects.filter(
        status=Run.Status.RUNNING, lease_expires_at__lt=timezone.now()
    ).values_list("pk", flat=True)
    failed = Run.objects.filter(status=Run.Status.FAILED).filter(~Exists(later)).values_list(
        "pk", flat=True)
    found = set(stalled.union(expired, failed, all=True))
    found.update(run.pk for run in unpicked_runs())
    return sorted(found)


def stalled_q() -> Q:
    """Marked stalled, or still 'running' with a lease nobody renewed."""
    return Q(status=Run.Status.STALLED) | Q(
        status=Run.Status.RUNNING, lease_expires_at__lt=timezone.now()
    )


# Tab counts stop here ("10,000+"): counting a million succeeded runs on every console page
# would cost more than the page.
COUNT_CAP = 10_000


def run_counts(attention: list[int] | None = None) -> dict[str, int]:
    """Runs per status tab, at most COUNT_CAP + 1 each, "attention" included, and the open
    reviews (one statement, plus the task-queue read of `attention_pks()` unless the caller
    passes the one it read). Stalled counts the expired leases too; `open_reviews` is what
    the waiting runs wait for. Each count reads at most COUNT_CAP + 1 entries of its index."""
    q = connection.ops.quote_name
    table = q(Run._meta.db_table)
    capped = (f"(SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {{}} "  # noqa: S608
              f"LIMIT {COUNT_CAP + 1}) c)")
    parts = [capped.format("status = %s") for _ in Run.Status.values]
    parts.append(capped.format("status = %s AND lease_expires_at < %s"))
    parts.append(f"(SELECT COUNT(*) FROM {q(ReviewRequest._meta.db_table)} "  # noqa: S608
                 "WHERE status IN (%s, %s))")
    params = [*Run.Status.values, Run.Status.RUNNING, _db_time(timezone.now()),
              *ReviewRequest.OPEN]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(parts)}", params)
        row = cursor.fetchone()
    counts = dict(zip(Run.Status.values, row, strict=False))
    counts["stalled"] = min(counts["stalled"] + row[len(Run.Status.values)], COUNT_CAP + 1)
    counts["attention"] = len(attention if attention is not None else attention_pks())
    counts["open_reviews"] = row[-1]
    return counts


def is_stalled(run: Run, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    return run.status == Run.Status.STALLED or (
        run.status == Run.Status.RUNNING
        and run.lease_expires_at is not None
        and run.lease_expires_at < now
    )


def stalled_for(run: Run, now: dt.datetime | None = None) -> dt.timedelta | None:
    now = now or timezone.now()
    if not is_stalled(run, now):
        return None
    since = run.heartbeat_at or run.lease_expires_at or run.started_at or run.created_at
    return now - since if since else None
