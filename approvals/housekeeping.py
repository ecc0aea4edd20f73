"""Rows that outlive their use, deleted by the review sweeper (`sweep_reviews`) every
STEPWISE_PRUNE_EVERY_SECONDS: stored API responses past their 24 hours of replay (a client
that sends a new `Idempotency-Key` with every POST leaves one row per request, its body
included), and expired sessions (Django keeps them until `clearsessions`; both session
engines write them to the database). In batches (`batchdelete`)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.sessions.models import Session
from django.utils import timezone

from approvals.api.idempotency import WINDOW
from approvals.api.models import IdempotencyRecord
from orchestration.runtime.batchdelete import delete_in_batches

__all__ = ["Tidied", "tidy"]


@dataclass(frozen=True, slots=True)
class Tidied:
    idempotency_records: int
    sessions: int

    def __bool__(self) -> bool:
        return bool(self.idempotency_records or self.sessions)


def tidy() -> Tidied:
    now = timezone.now()
    return Tidied(
        idempotency_records=delete_in_batches(
            IdempotencyRecord.objects.filter(created_at__lt=now - WINDOW)),
        sessions=delete_in_batches(Session.objects.filter(expire_date__lt=now)),
    )
