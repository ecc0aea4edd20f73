"""The one chokepoint per object type: look it up, check this user may touch it, return it.

Every view and every bulk action goes through these functions, so a permission rule lives in
exactly one place. `for_update=True` means the caller is about to change the object.
"""

from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404

from approvals import rowread
from approvals.models import ReviewRequest
from orchestration.runtime.models import Run, Thread

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
    require(user, VIEW, "see reviews")
    review = review_with_relations(pk)
    if review is None:
        raise Http404(f"There is no review #{pk}.")
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
def _review_sql() -> str:
    q = connection.ops.quote_name
    user = get_user_model()._meta.db_table
    return (f"SELECT {rowread.select(_review_joins())} "  # noqa: S608
            f"FROM {q(ReviewRequest._meta.db_table)} r "
            f"INNER JOIN {q(Thread._meta.db_table)} t ON t.id = r.thread_id "
            f"LEFT OUTER JOIN {q(Run._meta.db_table)} x ON x.id = r.run_id "
            f"LEFT OUTER JOIN {q(user)} u ON u.id = r.claimed_by_id WHERE r.id = %s")


def review_with_relations(pk: int) -> ReviewRequest | None:
    """Review `pk` with its thread, run and claimer, as
    `select_related("thread", "run", "claimed_by").get(pk=pk)` reads it, from a fixed
    statement (approvals.rowread); None if there is no such review."""
    with connection.cursor() as cursor:
        cursor.execute(_review_sql(), [pk])
        row = cursor.fetchone()
    return rowread.build(_review_joins(), row) if row else None  # type: ignore[return-value]


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
    require(user, VIEW_OPS, "see the ops console")
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
