"""The demo's stand-in for an outside payment system: a ledger of payouts, one per
idempotency key, so a replayed branch that pays again is recognised and pays nothing."""

from __future__ import annotations

from django.db import models


class Payout(models.Model):
    # `orchestration.task_key()` of the task that paid: the same on every replay of it
    idempotency_key = models.CharField(max_length=64, unique=True)
    expense_id = models.IntegerField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    reference = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.reference} ({self.amount} {self.currency})"
