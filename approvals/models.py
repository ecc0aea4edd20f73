"""Review requests raised by paused runs, and the immutable decisions people make on them."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from orchestration.runtime.models import Run, Thread


class ReviewRequest(models.Model):
    """One interrupt of one paused run that a person must answer."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CLAIMED = "claimed", "Claimed"
        DECIDED = "decided", "Decided"
        CANCELLED = "cancelled", "Cancelled"
        SUPERSEDED = "superseded", "Superseded"

    OPEN = (Status.PENDING, Status.CLAIMED)

    class Kind(models.TextChoices):
        REVIEW = "review", "Review"
        # any other interrupt payload: shown as data, answered with free text
        RESPOND = "respond", "Respond"

    # Indexed by `review_thread_created` (thread, created_at); `claimed_by` and `reanswer_of`,
    # unset on most reviews, where set: each index is paid by the insert and every status
    # change.
    thread = models.ForeignKey(
        Thread, on_delete=models.CASCADE, related_name="reviews", db_index=False
    )
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    interrupt_id = models.CharField(max_length=200)
    node = models.CharField(max_length=200, blank=True)
    # the checkpoint the run paused at: "decide differently" forks from here
    checkpoint_id = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REVIEW)
    title = models.CharField(max_length=300, blank=True)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    # a username or a group name, from the payload; empty means anyone with the role
    assignee = models.CharField(max_length=150, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    # "decide differently": this review re-answers `reanswer_of` on a new branch
    reanswer_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reanswers",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # when it should be answered ("due_in" seconds in the payload, or the graph's default),
    # and when it was escalated for being overdue (once)
    due_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # An interrupt is open at most once per thread: a re-delivered run_paused signal or
            # a resume that re-asks the same interrupt reuses the open row.
            models.UniqueConstraint(
                fields=["thread", "interrupt_id"],
                condition=Q(status__in=["pending", "claimed"]),
                name="review_one_open_per_interrupt",
            ),
        ]
        indexes = [
            models.Index(fields=["thread", "created_at"], name="review_thread_created"),
            # the inbox's pages walk these (selectors.review_page): per status in page order
            # (it also serves any lookup by status, or status and created_at), and the
            # overdue ones
            models.Index(fields=["status", "created_at", "id"], name="review_inbox_order"),
            models.Index(fields=["status", "due_at"], name="review_status_due"),
            models.Index(
                fields=["claimed_by"], condition=Q(claimed_by__isnull=False),
                name="review_claimed_by",
            ),
            models.Index(
                fields=["reanswer_of"], condition=Q(reanswer_of__isnull=False),
                name="review_reanswer_of",
            ),
        ]
        permissions = [
            ("decide_review", "Can claim and decide reviews"),
            ("fork_thread", "Can fork a thread from a past checkpoint"),
            ("view_ops", "Can see the ops console"),
            ("operate_runs", "Can resume, retry and cancel runs"),
            ("override_claim", "Can decide a review someone else claimed"),
            ("start_thread", "Can start threads"),
        ]

    def __str__(self) -> str:
        return self.title or f"review {self.pk} of {self.thread_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    @property
    def is_overdue(self) -> bool:
        from django.utils import timezone

        return self.is_open and self.due_at is not None and self.due_at < timezone.now()

    @property
    def actions(self) -> list[str]:
        if self.kind == self.Kind.RESPOND:
            return ["respond"]
        allowed = self.payload.get("actions") or ["approve", "reject"]
        return [a for a in allowed if a in _decision_actions()]

    @property
    def data(self) -> Any:
        return self.payload.get("data")

    @property
    def schema(self) -> dict[str, Any] | None:
        schema = self.payload.get("schema")
        return schema if isinstance(schema, dict) else None


class ImmutableError(Exception):
    pass


class Decision(models.Model):
    """What a person decided on a review. Written once, never changed (it is the audit trail):
    append-only in the database too (`orchestration.runtime.audit`), where only `resumed_run`
    may be filled in once, and the review, user and run it names cannot be deleted."""

    class Action(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"
        EDIT = "edit", "Edit then approve"
        RESPOND = "respond", "Respond"
        # Agent Inbox's "ignore": the agent is told to drop the action it asked for
        IGNORE = "ignore", "Ignore"

    review = models.OneToOneField(ReviewRequest, on_delete=models.PROTECT, related_name="decision")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    comment = models.TextField(blank=True)
    values = models.JSONField(default=dict, blank=True)
    text = models.TextField(blank=True)
    # the run that carried the answer back into the thread
    resumed_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["review"], name="decision_one_per_review"),
        ]

    def __str__(self) -> str:
        return f"{self.action} on review {self.review_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ImmutableError(f"decision {self.pk} is immutable; record a new review instead")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ImmutableError(f"decision {self.pk} is immutable and cannot be deleted")

    def answer(self, reviewer: str) -> dict[str, Any]:
        """The resume value the interrupted node receives (brief-common's answer format), or
        for an Agent Inbox review the `HumanResponse` list recorded (`approvals.agent_inbox`)."""
        from approvals.agent_inbox import RESPONSE_KEY

        if isinstance(self.values, dict) and RESPONSE_KEY in self.values:
            return self.values[RESPONSE_KEY]
        return {
            "action": self.action,
            "comment": self.comment,
            "values": dict(self.values),
            "text": self.text,
            "reviewer": reviewer,
        }


@functools.cache
def _decision_actions() -> frozenset[str]:
    # `Action.values` builds a new list on every access; the API lists call this per review
    return frozenset(Decision.Action.values)
