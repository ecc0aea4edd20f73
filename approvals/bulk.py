"""Deciding several reviews at once: a preview of what will happen to each, then one decision
per review, each through `access_review` and `do_decide` on its own.

One review refused (no permission, claimed by someone else, already decided) does not undo or
block the others: every review gets its own outcome, which the page lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from approvals import selectors
from approvals.access import OVERRIDE_CLAIM, access_review
from approvals.actions import DecisionInput, ReviewError, do_decide
from approvals.consequences import consequence
from approvals.models import Decision, ReviewRequest

BULK_ACTIONS = (Decision.Action.APPROVE, Decision.Action.REJECT)
# "All matching this filter" decides at most this many at once; the preview says so.
MAX_BULK = 200


@dataclass(frozen=True, slots=True)
class BulkItem:
    pk: int
    review: ReviewRequest | None
    problem: str  # "" when the decision applies
    # nodes that may run next and act outside the graph: flagged as on the review's own page
    side_effects: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problem


def matching_ids(user: AbstractBaseUser, f: selectors.InboxFilter) -> list[int]:
    """The reviews "all matching this filter" means, in the inbox's order."""
    return list(selectors.review_list(user, f).values_list("pk", flat=True)[:MAX_BULK])


def preview(user: AbstractBaseUser, pks: Iterable[int], action: str) -> list[BulkItem]:
    """What deciding `action` on each review would do, without deciding anything."""
    items = []
    for pk in dict.fromkeys(pks):  # a review chosen twice is decided once
        try:
            review = access_review(user, pk, for_update=True)
        except (PermissionDenied, Http404) as exc:
            items.append(BulkItem(pk, None, str(exc) or f"You may not decide review #{pk}."))
            continue
        problem = check_bulk(user, review, action)
        steps = consequence(review) if not problem else None
        items.append(BulkItem(pk, review, problem, steps.side_effects if steps else ()))
    return items


def check_bulk(user: AbstractBaseUser, review: ReviewRequest, action: str) -> str:
    if action not in BULK_ACTIONS:
        return f"'{action}' cannot be decided in bulk (approve or reject)."
    if not review.is_open:
        return f"Review #{review.pk} is {review.get_status_display().lower()}."
    if (review.claimed_by_id not in (None, user.pk)
            and not user.has_perm(OVERRIDE_CLAIM)):
        who = review.claimed_by.get_username() if review.claimed_by else "someone"
        return f"Review #{review.pk} is claimed by {who}."
    if action not in review.actions:
        return (f"Review #{review.pk} does not offer '{action}' "
                f"(it offers {', '.join(review.actions)}): decide it on its page.")
    return ""


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    pk: int
    review: ReviewRequest | None
    ok: bool
    message: str


def do_bulk_decide(
    user: AbstractBaseUser, pks: Iterable[int], action: str, comment: str
) -> list[BulkOutcome]:
    """Decide each review on its own (its own permission check, its own transaction, its own
    decision row); report each one."""
    if action == Decision.Action.REJECT and not comment.strip():
        raise ReviewError("A rejection needs a comment saying why; it goes to every review.")
    outcomes = []
    for item in preview(user, pks, action):
        if not item.ok or item.review is None:
            outcomes.append(BulkOutcome(item.pk, item.review, False, item.problem))
            continue
        try:
            do_decide(user, item.review, DecisionInput(action=action, comment=comment))
        except ReviewError as exc:
            outcomes.append(BulkOutcome(item.pk, item.review, False, str(exc)))
        else:
            label = Decision.Action(action).label.lower()
            outcomes.append(BulkOutcome(item.pk, item.review, True, f"{label}d"
                                        if label.endswith("e") else f"{label}ed"))
    return outcomes
