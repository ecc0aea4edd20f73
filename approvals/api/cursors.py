"""Keyset cursors: an opaque token holding the last row's sort key, so a page never skips
or repeats rows when new ones arrive."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from django.db.models import Q, QuerySet

from approvals.api.problems import ApiProblem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode(at: dt.datetime, pk: int) -> str:
    return encode_value([at.isoformat(), pk])


def decode(cursor: str) -> tuple[dt.datetime, int]:
    return decode_value(cursor, _time_and_pk)


def _time_and_pk(value: Any) -> tuple[dt.datetime, int] | None:
    if not (isinstance(value, list) and len(value) == 2):
        return None  # another list's cursor (a checkpoint list's is an id)
    return dt.datetime.fromisoformat(value[0]), int(value[1])


def encode_value(value: Any) -> str:
    """`value` (JSON) as an opaque cursor."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_value[T](cursor: str, read: Callable[[Any], T | None]) -> T:
    """What `read` makes of the JSON value in `cursor` (None, or an error: not a cursor this
    API gave out, a 400 that says so)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = read(json.loads(raw))
        if found is None:
            raise ValueError("it holds no position")
        return found
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ApiProblem(400, f"cursor {cursor[:40]!r} is not one this API gave out: {exc}. "
                              "Start again without ?cursor=.") from None


def page(
    qs: QuerySet[Any], cursor: str | None, limit: int, field: str, *, descending: bool
) -> tuple[list[Any], str | None]:
    """One page of `qs` (already ordered by `field`, then pk, both ascending or both
    descending) after `cursor`, and the cursor of the next page."""
    if cursor:
        at, pk = decode(cursor)
        op = "lt" if descending else "gt"
        qs = qs.filter(Q(**{f"{field}__{op}": at}) | Q(**{field: at, f"pk__{op}": pk}))
    return page_of(list(qs[: limit + 1]), limit, field)


def page_of(rows: list[Any], limit: int, field: str = "created_at"
            ) -> tuple[list[Any], str | None]:
    """The first `limit` of `rows` (up to `limit + 1` read after a cursor, in order) and the
    cursor of the next page, None if the extra row says there is none."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode(getattr(rows[-1], field), rows[-1].pk) if more and rows else None
    return rows, next_cursor
