"""Paying out through the ledger: the first call with a key pays, every later call with the
same key returns that first payout (like a payment API's idempotency keys)."""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction

from demo.models import Payout


def pay(key: str, expense_id: int, amount: Decimal, currency: str) -> tuple[Payout, bool]:
    """(the payout for `key`, whether this call made it)."""
    existing = Payout.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing, False
    reference = f"PAY-{expense_id:06d}-{int(amount * 100)}"
    try:
        with transaction.atomic():
            created = Payout.objects.create(
                idempotency_key=key, expense_id=expense_id, amount=amount, currency=currency,
                reference=reference,
            )
    except IntegrityError:  # a concurrent replay of the same task paid first
        return Payout.objects.get(idempotency_key=key), False
    return created, True
