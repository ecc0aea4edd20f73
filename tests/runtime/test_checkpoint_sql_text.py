"""The text a SQLite put writes for its JSON and datetime columns is the text Django's own
encoding writes (`json.dumps`, `str` of the naive datetime), for the shortcuts the put takes
for the usual values as for the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestration.runtime.checkpoint_sql import _json, _naive_text


@pytest.mark.parametrize(
    "value",
    [
        {}, [], (), ["n1"], ("n1",), ["é\"\\x\n"], ["a", "b"], [1], [None],
        {"messages": "1f0d2c3e-0000-6abc-8def-0123456789ab"}, {"é": [1, 2.5, True]},
    ],
)
def test_json_columns_are_compact_json(value: Any) -> None:
    assert _json(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 4, 20, 41, 5, 123456, tzinfo=UTC),
        datetime(2026, 12, 4, 20, 41, 5, tzinfo=UTC),  # no fraction: written without one
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(5, 1, 2, 3, 4, 5, 60, tzinfo=UTC),  # a zero-padded year
    ],
)
def test_created_at_text_is_the_naive_datetimes_text(value: datetime) -> None:
    assert _naive_text(value) == str(value.replace(tzinfo=None))


def test_created_at_text_is_right_across_minutes_seen_in_any_order() -> None:
    """The text down to the minute is kept from the previous call: a run of datetimes across
    minutes, hours, days and years, then the same run backwards, each gets its own text."""
    start = datetime(2026, 12, 31, 23, 58, 1, tzinfo=UTC)
    run = [start + timedelta(seconds=13 * i, microseconds=77_777 * i) for i in range(300)]
    run += [datetime(999, 1, 1, 0, 0, 0, 5, tzinfo=UTC), datetime(1000, 1, 1, tzinfo=UTC)]
    for value in run + run[::-1]:
        assert _naive_text(value) == str(value.replace(tzinfo=None))
