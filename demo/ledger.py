"""Paying out through the ledger: the first call with a key pays, every later call with the
same key and amount returns that first payout, and a later call with the same key and another
amount is refused (as a payment API's idempotency keys are: Stripe answers such a request with
an error rather than paying again or pretending the new amount was paid)."""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction

from demo.models import Payout


class KeyReused(Exception):  # noqa: N818 - reads as the ledger's answer
    """The key already paid a different amount."""


def pay(key: str, expense_id: int, amount: Decimal, currency: str) -> tuple[Payout, bool]:
    """(the payout for `key`, whether this call made it)."""
    existing = Payout.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return _same_request(existing, amount, currency), False
    reference = f"PAY-{expense_id:06d}-{int(amount * 100)}"
    try:
        with transaction.atomic():
            created = Payout.objects.create(
                idempotency_key=key, expense_id=expense_id, amount=amount, currency=currency,
                reference=reference,
            )
    except IntegrityError:  # a concurrent replay of the same task paid first
        return _same_request(Payout.objects.get(idempotency_key=key), amount, currency), False
    return created, True


def _same_request(paid: Payout, amount: Decimal, currency: str) -> Payout:
    if paid.amount != amount or paid.currency != currency:
        raise KeyReused(
            f"the ledger already paid {paid.amount} {paid.currency} ({paid.reference}) for "
            f"this payout and refuses {amount} {currency} under the same key. Settle the "
            "difference outside Stepwise (a refund or a top-up), then cancel this run or fork "
            "with the amount that was paid."
        )
    return paid
