"""`DjangoStore`: the store in the Django model `StoreItem` (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db.models import Q

from orchestration.runtime import models
from orchestration.store.base import BaseStore, Row, prefix_bounds

_T = TypeVar("_T")
_COLUMNS = ("namespace", "key", "value", "created_at", "updated_at")

__all__ = ["DjangoStore"]


class DjangoStore(BaseStore):
    def __init__(self, *, using: str = "default") -> None:
        self.using = using

    def _items(self) -> Any:
        return models.StoreItem.objects.using(self.using)

    def _read(self, ns: str, key: str) -> Row | None:
        row = self._items().filter(namespace=ns, key=key).values_list(*_COLUMNS).first()
        return None if row is None else _row(row)

    def _write(self, ns: str, key: str, data: bytes, at: datetime) -> None:
        # one upsert statement: two writers of one key never both insert
        self._items().bulk_create(
            [models.StoreItem(namespace=ns, key=key, value=data, created_at=at, updated_at=at)],
            update_conflicts=True,
            unique_fields=["namespace", "key"],
            update_fields=["value", "updated_at"],
        )

    def _remove(self, ns: str, key: str) -> None:
        self._items().filter(namespace=ns, key=key).delete()

    def _rows_under(self, prefix: str) -> Iterable[Row]:
        rows = self._items()
        if prefix:
            low, high = prefix_bounds(prefix)
            rows = rows.filter(Q(namespace=prefix) | Q(namespace__gt=low, namespace__lt=high))
        return [_row(r) for r in rows.order_by("id").values_list(*_COLUMNS)]

    def _all_namespaces(self) -> Iterable[str]:
        return list(self._items().values_list("namespace", flat=True).distinct())

    async def _offload(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        # the ORM is synchronous: run it where Django expects its connections to live
        return await sync_to_async(fn)(*args, **kwargs)


def _row(row: tuple[Any, ...]) -> Row:
    ns, key, data, created, updated = row
    return ns, key, bytes(data), created, updated
