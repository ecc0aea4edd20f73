"""The text a SQLite put writes for its JSON and datetime columns is the text Django's own
encoding writes (`json.dumps`, `str` of the naive datetime), for the shortcuts the put takes
for the usual values as for the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
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
