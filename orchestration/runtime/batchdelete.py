"""Deleting many old rows without holding a database for long: in batches, each its own
transaction. On SQLite one DELETE of a year of rows would hold the write lock, and with it
every worker and web request that writes, until it ended."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet

__all__ = ["BATCH", "delete_in_batches"]

BATCH = 2_000


def delete_in_batches(rows: QuerySet[Any], batch: int = BATCH) -> int:
    """Delete the rows of `rows` (a filter: re-applied to each batch, so a row that stopped
    matching meanwhile stays); how many went."""
    deleted = 0
    while True:
        # no order: the table's own, where old rows come first and each batch's read stops
        # early
        ids = list(rows.order_by().values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        with transaction.atomic(using=rows.db):
            deleted += rows.filter(pk__in=ids).delete()[0]
        if len(ids) < batch:
            return deleted
