"""The one chokepoint per object type: look it up, check this user may touch it, return it.

Every view and every bulk action goes through these functions, so a permission rule lives in
exactly one place. `for_update=True` means the caller is about to change the object.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404

from approvals import rowread
from approvals.models import Decision, ReviewRequest
from orchestration.runtime.models import Checkpoint, Run, Thread

User = AbstractBaseUser | AnonymousUser

VIEW = "approvals.view_reviewrequest"
DECIDE = "approvals.decide_review"
FORK = "approvals.fork_thread"
VIEW_OPS = "approvals.view_ops"
OPERATE = "approvals.operate_runs"
OVERRIDE_CLAIM = "approvals.override_claim"
START = "approvals.start_thread"


def require(user: User, perm: str, what: str) -> None:
    if not user.is_authenticated or not user.has_perm(perm):
        raise PermissionDenied(f"You do not have permission to {what}. Ask an admin for the role.")


def group_names(user: User) -> frozenset[str]:
    """The names of the user's groups, read once per user object (one per request, like
    Django's permission cache on it)."""
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_stepwise_group_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._stepwise_group_names = cached  # type: ignore[union-attr]
    return cached


def user_matches_assignee(user: User, assignee: str) -> bool:
    """An empty assignee is anyone; otherwise the username or one of the user's groups."""
    if not assignee:
        return True
    if user.get_username() == assignee:
        return True
    return assignee in group_names(user)


def access_review(user: User, pk: int, *, for_update: bool) -> ReviewRequest:
    review = _readable(user, pk, review_with_relations)
    if for_update:
        require(user, DECIDE, "decide reviews")
        if not user.has_perm(OVERRIDE_CLAIM) and not user_matches_assignee(user, review.assignee):
            raise PermissionDenied(
                f"Review #{pk} is assigned to {review.assignee!r}; only they can act on it."
            )
    return review


@functools.cache
def _review_joins() -> tuple[rowread.Join, ...]:
    return (rowread.Join(ReviewRequest, "r"), rowread.Join(Thread, "t", "thread"),
            rowread.Join(Run, "x", "run"), rowread.Join(get_user_model(), "u", "claimed_by"))


@functools.cache
def _review_from() -> str:
    """The review joined to its thread, run and claimer (quoted model names only)."""
    q = connection.ops.quote_name
    user = get_user_model()._meta.db_table
    return (f"FROM {q(ReviewRequest._meta.db_table)} r "
            f"INNER JOIN {q(Thread._meta.db_table)} t ON t.id = r.thread_id "
            f"LEFT OUTER JOIN {q(Run._meta.db_table)} x ON x.id = r.run_id "
            f"LEFT OUTER JOIN {q(user)} u ON u.id = r.claimed_by_id")


@functools.cache
def _review_sql() -> str:
    return f"SELECT {rowread.select(_review_joins())} {_review_from()} WHERE r.id = %s"  # noqa: S608


def review_with_relations(pk: int) -> ReviewRequest | None:
    """Review `pk` with its thread, run and claimer, as
    `select_related("thread", "run", "claimed_by").get(pk=pk)` reads it, from a fixed
    statement (approvals.rowread); None if there is no such review."""
    with connection.cursor() as cursor:
        cursor.execute(_review_sql(), [pk])
        row = cursor.fetchone()
    return rowread.build(_review_joins(), row) if row else None  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class ReviewPage:
    """What the review page reads before anything else, in one statement (`access_review_page`):
    the review with its relations, whether the checkpoint it was asked at still exists (the
    kept "what changed" section is used only then: approvals.review_changes), and for a
    decided review its decision with the decision's author and whether a review re-answers it
    (approvals.selectors.decision_with_reanswers asked this in a statement of its own)."""

    review: ReviewRequest
    checkpoint_exists: bool
    decision: Decision | None  # None unless the review is decided
    reanswered: bool


def access_review_page(user: User, pk: int) -> ReviewPage:
    """`access_review(user, pk, for_update=False)` for the review page, with what the page
    reads next about the review folded into the same round trip: on every GET of a review
    and on the page a decision redirects to, it was two or three statements of one indexed
    row each."""
    return _readable(user, pk, _review_page)


def _readable[T](user: User, pk: int, read: Callable[[int], T | None]) -> T:
    """What `read` finds for review `pk`, if `user` may see reviews (the one check of
    `access_review` and `access_review_page` for reading)."""
    require(user, VIEW, "see reviews")
    found = read(pk)
    if found is None:
        raise Http404(f"There is no review #{pk}.")
    return found


def _review_page(pk: int) -> ReviewPage | None:
    with connection.cursor() as cursor:
        cursor.execute(_review_page_sql(), [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    width = _width(_review_joins())
    review: ReviewRequest = rowread.build(_review_joins(), row[:width])  # type: ignore[assignment]
    decision = None
    decision_row = row[width:-2]
    if review.status == ReviewRequest.Status.DECIDED and decision_row[0] is not None:
        decision = rowread.build(_page_decision_joins(), decision_row)
    return ReviewPage(review, bool(row[-2]), decision, bool(row[-1]))  # type: ignore[arg-type]


def _width(joins: tuple[rowread.Join, ...]) -> int:
    return sum(len(j.model._meta.concrete_fields) for j in joins)


@functools.cache
def _page_decision_joins() -> tuple[rowread.Join, ...]:
    # the run the decision resumed: the page names its state and error (a branch that failed
    # read as "New decision recorded")
    return (rowread.Join(Decision, "d"), rowread.Join(get_user_model(), "du", "decided_by"),
            rowread.Join(Run, "dr", "resumed_run"))


@functools.cache
def _review_page_sql() -> str:
    """`_review_sql` with the review's decision and its author (outer joins: one decision per
    review at most, by its unique review_id) and two index probes: the checkpoint the review
    was asked at, any review that re-answers this one. The decision's id comes first among
    its columns (its primary key), so a NULL there means none."""
    q = connection.ops.quote_name
    assert _page_decision_joins()[0].model._meta.concrete_fields[0].primary_key
    return (
        f"SELECT {rowread.select(_review_joins())}, "  # noqa: S608  quoted model names only
        f"{rowread.select(_page_decision_joins())}, "
        f"EXISTS (SELECT 1 FROM {q(Checkpoint._meta.db_table)} c "
        "WHERE c.thread_id = r.thread_id AND c.checkpoint_ns = '' "
        "AND c.checkpoint_id = r.checkpoint_id), "
        f"EXISTS (SELECT 1 FROM {q(ReviewRequest._meta.db_table)} a "
        f"WHERE a.reanswer_of_id = r.id) {_review_from()} "
        f"LEFT OUTER JOIN {q(Decision._meta.db_table)} d ON d.review_id = r.id "
        f"LEFT OUTER JOIN {q(get_user_model()._meta.db_table)} du "
        "ON du.id = d.decided_by_id "
        f"LEFT OUTER JOIN {q(Run._meta.db_table)} dr ON dr.id = d.resumed_run_id "
        "WHERE r.id = %s"
    )


def access_redecide(user: User, pk: int) -> ReviewRequest:
    """Deciding a decided review differently forks its thread (and re-runs what followed the
    review), so it needs the fork permission as well as the right to decide the review."""
    review = access_review(user, pk, for_update=True)
    require(user, FORK, "decide a review differently (it forks the thread)")
    return review


def access_thread(user: User, thread_id: str, *, for_update: bool) -> Thread:
    require(user, VIEW, "see threads")
    try:
        thread = Thread.objects.get(thread_id=thread_id)
    except Thread.DoesNotExist:
        raise Http404(f"There is no thread {thread_id!r}.") from None
    if for_update:
        require(user, FORK, "fork threads")
    return thread


def access_run(user: User, pk: int, *, for_update: bool) -> Run:
    """A run is part of its thread: whoever sees threads sees its runs (a reviewer following
    the run its decision started, through the API, got a 403 naming the ops console). The
    ops console's pages ask for the console's permission on top (`views.run_detail`)."""
    require(user, VIEW, "see runs")
    try:
        run = Run.objects.select_related("thread").get(pk=pk)
    except Run.DoesNotExist:
        raise Http404(f"There is no run #{pk}.") from None
    if for_update:
        require(user, OPERATE, "resume, retry or cancel runs")
    return run


def access_graphs(user: User, *, for_update: bool) -> None:
    """Listing graphs needs the viewer role; starting a thread of one, the start permission."""
    require(user, VIEW, "see graphs")
    if for_update:
        require(user, START, "start threads")
