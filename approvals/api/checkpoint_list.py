"""`GET /threads/{id}/checkpoints`: a thread's checkpoint tree from one fixed statement, its
items built in the form the route's response model dumps them to.

The contract answers with the whole tree. For a 10,000-checkpoint thread that went through
the ORM's per-row converters (four JSON columns decoded, a timestamp parsed), then a pydantic
validation per item and a renderer calling back into Python for every timestamp: 165 ms for
1.8 MB. Here each column is read as what the item shows: `next` as JSON text (decoded once per
distinct value: a thread repeats a handful), who made a checkpoint as its user's name or the
metadata's `user` or `reviewer` subtree (decoded only where set), the time as UTC text put
into the renderer's form by string operations. Each item is `shapes.checkpoint_item`, as the
checkpoint's own endpoint builds it.

`?limit=` pages the tree (oldest first, by checkpoint id: a child's id sorts after its
parent's); `next` is then the cursor of the following page, whose items may name parents
listed on an earlier one.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection

from approvals.api import cursors
from approvals.api.shapes import checkpoint_item, json_time
from approvals.rowread import field_converter
from orchestration.runtime.models import Checkpoint, Thread

MAX_LIMIT = 1_000


@functools.cache
def _statement(vendor: str, after: bool, limit: bool) -> str:
    """The rows of a thread's root checkpoints, oldest first; quoted names from the models
    only. `vendor` keys the cache: the text differs per database."""
    q = connection.ops.quote_name
    user = get_user_model()._meta
    username = q(user.get_field(user.model.USERNAME_FIELD).column)
    made_by, reviewer = (_text(f"c.extra -> '{key}'", vendor) for key in ("user", "reviewer"))
    return (
        "SELECT c.id, c.parent_id, c.checkpoint_id, c.step, c.source, "  # noqa: S608
        f"{_text('c.next', vendor)}, {_time(vendor)}, u.{username}, {made_by}, {reviewer} "
        f"FROM {q(Checkpoint._meta.db_table)} c "
        f"LEFT OUTER JOIN {q(user.db_table)} u ON u.id = c.created_by_id "
        "WHERE c.thread_id = %s AND c.checkpoint_ns = ''"
        + (" AND c.checkpoint_id > %s" if after else "")
        + " ORDER BY c.checkpoint_id"
        + (" LIMIT %s" if limit else "")
    )


def _text(expression: str, vendor: str) -> str:
    """A JSON value as its text, whatever loader the connection has for `jsonb`."""
    return f"({expression})::text" if vendor == "postgresql" else expression


def _time(vendor: str) -> str:
    """`created_at` as UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]" (`str` of the naive time):
    on SQLite the text Django stored (in a UTC database: see `_time_reader`), which the
    sqlite3 module would otherwise parse by the column's declared type; on PostgreSQL
    formatted by the server, which psycopg would otherwise load into a `datetime`."""
    if vendor != "postgresql":
        return "CAST(c.created_at AS TEXT)"
    utc = "(c.created_at AT TIME ZONE 'UTC')"
    return (f"CASE WHEN EXTRACT(MICROSECONDS FROM {utc})::int %% 1000000 = 0 "
            f"THEN to_char({utc}, 'YYYY-MM-DD HH24:MI:SS') "
            f"ELSE to_char({utc}, 'YYYY-MM-DD HH24:MI:SS.US') END")


def _utc_text_time(text: str) -> str:
    """A UTC time's text (`_time`) as `json_time` writes the aware time the ORM would make of
    it ("...T...SS[.fff]Z", the microseconds cut to milliseconds): the same text, three string
    operations instead of a parse, a time zone and a format for each of a long thread's
    checkpoints."""
    if len(text) == 26:
        return f"{text[:10]}T{text[11:23]}Z"
    if len(text) == 19:
        return f"{text[:10]}T{text[11:]}Z"
    return json_time(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC))  # a year < 1000


def _time_reader() -> Callable[[Any], str]:
    if connection.vendor == "postgresql" or connection.timezone is dt.UTC:
        return _utc_text_time
    # SQLite storing local times (DATABASES' TIME_ZONE): the ORM's conversion
    convert = field_converter(Checkpoint, "created_at")
    return lambda value: json_time(convert(value))


def checkpoint_page(
    thread: Thread, cursor: str | None, limit: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The items of `thread`'s tree after `cursor` (all of them without `limit`), and the
    cursor of the next page (None: there is none)."""
    params: list[Any] = [thread.pk]
    if cursor:
        params.append(cursors.decode_value(
            cursor, lambda value: value if isinstance(value, str) and value else None))
    if limit is not None:
        params.append(limit + 1)
    with connection.cursor() as db:
        db.execute(_statement(connection.vendor, bool(cursor), limit is not None), params)
        rows = db.fetchall()
    more = limit is not None and len(rows) > limit
    if more:
        rows = rows[:limit]
    ids = {row[0]: row[2] for row in rows}
    missing = {row[1] for row in rows if row[1] is not None and row[1] not in ids}
    if missing:  # parents listed on an earlier page
        ids.update(Checkpoint.objects.filter(pk__in=missing).values_list("pk", "checkpoint_id"))
    time_of = _time_reader()
    # a thread repeats a handful of `next` lists: each text is decoded once
    next_of = functools.lru_cache(maxsize=256)(_json)
    items = [
        checkpoint_item(checkpoint_id, ids.get(parent) if parent is not None else None, step,
                        source, next_of(next_text), time_of(created), username, _json(user),
                        _json(reviewer))
        for _, parent, checkpoint_id, step, source, next_text, created, username, user, reviewer
        in rows
    ]
    return items, cursors.encode_value(rows[-1][2]) if more else None


def _json(text: str | bytes | None) -> Any:
    """A JSON column or subtree read as text; None where it is missing."""
    return None if text is None else json.loads(text)

