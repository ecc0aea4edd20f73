"""The one chokepoint per object type: look it up, check this user may touch it, return it.

Every view and every bulk action goes through these functions, so a permission rule lives in
exactly one place. `for_update=True` means the caller is about to change the object.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

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
    try:
        review = ReviewRequest.objects.select_related("thread", "run", "claimed_by").get(pk=pk)
    except ReviewRequest.DoesNotExist:
        raise Http404(f"There is no review #{pk}.") from None
    if for_update:
        require(user, DECIDE, "decide reviews")
        if not user.has_perm(OVERRIDE_CLAIM) and not user_matches_assignee(user, review.assignee):
            raise PermissionDenied(
                f"Review #{pk} is assigned to {review.assignee!r}; only they can act on it."
            )
    return review


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
