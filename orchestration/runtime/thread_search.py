"""Threads whose id or title contains a text, case-insensitively, from an index on both
databases (migration 0016): the threads page's search, the API's `q` and the admin's.

The index is asked first for the matching threads' keys; the page and its count then read
those threads by key.

- SQLite has no index for `LIKE '%…%'`: the FTS5 trigram table's phrase query matches the
  same substrings (and folds case beyond ASCII, where SQLite's LIKE folds only A-Z). A text
  of fewer than three characters has no trigram: the keys come from one read of the table,
  where the page and its count read it twice.
- PostgreSQL's trigram indexes serve `LOWER(…) LIKE LOWER(…)`. The question is planned for
  its text, never prepared: as a prepared statement (the app's connections prepare what they
  run twice) it got a generic plan after five runs, which guessed 1,000 matches for any text
  and read every thread in the page's order looking for them (134 ms at 100,000 threads for a
  text no thread holds, against 0.1 ms from the indexes). Planned for a short text, it reads
  the table once (110 ms at 100,000 threads, where the page and its count scanned it twice
  with generic plans: 270 ms).

A text more than MOST_FROM_INDEX threads hold is matched by the scan, Django's `icontains`
(`UPPER(…)`, which those indexes do not serve: its generic plan reads the table, not a whole
trigram index, which for a two-character text took 227 ms where the table took 103 ms).
"""

from __future__ import annotations

import json

from django.db import connections
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from orchestration.runtime.models import Thread

FTS = "stepwise_thread_search"  # migration 0016
SHORTEST_INDEXED = 3  # SQLite: the trigram tokenizer finds nothing shorter
# More matches than this and the text is common: reading the threads by their keys costs
# more than the scan (at 100,000 threads, 11,000 keys took 36 ms on SQLite and 127 ms on
# PostgreSQL for the page and its count). At 101,000 threads all matching "measure", SQLite's
# index listed every one (122 ms, twice), where the scan in the page's order stops at its
# first rows and counts every thread in ~30 ms. The index is asked for one more than this
# (~6 ms on SQLite, ~8 ms on PostgreSQL when every thread matches).
MOST_FROM_INDEX = 5_000
# The text is a parameter; the table names are this module's constants.
_SQLITE_FOUND = f'SELECT rowid FROM "{FTS}" WHERE "{FTS}" MATCH %s LIMIT %s'  # noqa: S608
_SQLITE_SCANNED = (  # Django's `icontains` on SQLite: LIKE with `\` escaping
    """SELECT id FROM "orchestration_thread" WHERE "title" LIKE %s ESCAPE '\\'"""
    """ OR "thread_id" LIKE %s ESCAPE '\\' LIMIT %s"""
)
_PG_FOUND = (
    'SELECT id FROM "orchestration_thread" WHERE LOWER("title") LIKE LOWER(%s)'
    ' OR LOWER("thread_id") LIKE LOWER(%s) LIMIT %s'
)


def threads_matching(threads: QuerySet[Thread], text: str) -> QuerySet[Thread]:
    """`threads` narrowed to those whose `thread_id` or `title` contains `text`. Asks the
    search index at once."""
    using = threads.db
    found = _found_by_index(using, text)
    if found is None:
        return threads.filter(Q(title__icontains=text) | Q(thread_id__icontains=text))
    # One parameter, whatever the number of keys: as `IN (%s, …)`, 11,000 of them took
    # PostgreSQL 450 ms to plan and read, twice (the page and its count).
    if connections[using].vendor == "postgresql":
        keys = RawSQL("SELECT unnest(%s::bigint[])", [found])  # noqa: S611
    else:
        keys = RawSQL("SELECT value FROM json_each(%s)", [json.dumps(found)])  # noqa: S611
    return threads.filter(pk__in=keys)


def _found_by_index(using: str, text: str) -> list[int] | None:
    """The keys of the threads holding `text`, from the index; None if it cannot say, or
    if they are more than MOST_FROM_INDEX."""
    connection = connections[using]
    with connection.cursor() as cursor:
        pattern = f"%{connection.ops.prep_for_like_query(text)}%"
        if connection.vendor == "sqlite" and len(text) >= SHORTEST_INDEXED:
            cursor.execute(_SQLITE_FOUND, [phrase(text), MOST_FROM_INDEX + 1])
        elif connection.vendor == "sqlite":  # no trigram: the table, read once
            cursor.execute(_SQLITE_SCANNED, [pattern, pattern, MOST_FROM_INDEX + 1])
        elif connection.vendor == "postgresql":
            with connection.wrap_database_errors:  # psycopg's own cursor: never prepared
                cursor.cursor.execute(
                    _PG_FOUND, [pattern, pattern, MOST_FROM_INDEX + 1], prepare=False
                )
        else:
            return None
        found = [pk for (pk,) in cursor.fetchall()]
    return found if len(found) <= MOST_FROM_INDEX else None


def phrase(text: str) -> str:
    """`text` as one FTS5 phrase: every character literal (a `"` doubled inside the quotes),
    so the trigram tokenizer matches it as a substring."""
    return '"' + text.replace('"', '""') + '"'
