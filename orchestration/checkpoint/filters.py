"""One filter push-down for every saver: which parts of `list(filter=...)` a saver may
compare in SQL, and the Python check for the rest.

The meaning of a filter is `base.metadata_matches`. A condition goes to SQL only where SQL
compares exactly as that function does, whatever the database:

- `source` (a string) and `step` (a whole number) compare with the row's own columns;
- a key of `metadata.extra` with a JSON scalar value (a string, a finite float, an int that
  fits in 64 bits, a bool, None) compares with the JSON-safe copy of `extra` a saver keeps
  for filtering, typed: `True` matches a JSON `true` only, never `1` or `"true"`; numbers
  match by value (`1` matches `1.0`);
- everything else (dicts, lists, infinite floats, huge ints, a `step` that is not a number)
  is `leftover`: the saver reads the candidate rows and keeps those `matches_leftover`
  accepts, and applies `limit` after that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestration.checkpoint import serde
from orchestration.checkpoint.base import CheckpointMetadata, metadata_matches
from orchestration.checkpoint.storage.records import SCALARS, CheckpointRecord

__all__ = [
    "SCALARS",
    "ExtraCondition",
    "SplitFilter",
    "matches_leftover",
    "record_metadata",
    "split_filter",
    "sqlite_condition",
]

JsonKind = Literal["null", "true", "false", "text", "number"]
_INT64 = (-(2**63), 2**63)


@dataclass(frozen=True, slots=True)
class ExtraCondition:
    """`metadata.extra[key]` is a JSON value of `kind`; for "text" and "number" it also
    equals `value`."""

    key: str
    kind: JsonKind
    value: str | int | float | None


@dataclass(frozen=True, slots=True)
class SplitFilter:
    """A validated filter, split by where it is checked.

    `columns`: `source` / `step`, compared with the row's columns; `extra`: conditions on
    the JSON-safe extra; `leftover`: checked in Python on the read rows (`matches_leftover`).
    """

    columns: Mapping[str, Any]
    extra: tuple[ExtraCondition, ...]
    leftover: Mapping[str, Any]


def split_filter(wanted: Mapping[str, Any]) -> SplitFilter:
    """Split a filter already checked by `base.validate_filter`."""
    columns: dict[str, Any] = {}
    extra: list[ExtraCondition] = []
    leftover: dict[str, Any] = {}
    for key, value in wanted.items():
        if key == "source":
            (columns if type(value) is str else leftover)[key] = value
        elif key == "step":
            # An integer column: a whole float compares as its int, any other goes to Python
            # (Django would truncate 2.5 to 2).
            if _kind(value) == "number" and float(value).is_integer():
                columns[key] = int(value)
            else:
                leftover[key] = value
        else:
            kind = _kind(value)
            if kind is None:
                leftover[key] = value
            else:
                extra.append(ExtraCondition(key, kind, value))
    return SplitFilter(columns, tuple(extra), leftover)


def _kind(value: Any) -> JsonKind | None:
    """The JSON kind SQL can compare `value` as, or None if only Python can."""
    kind = type(value)
    if kind is str:
        return "text"
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is int:
        return "number" if _INT64[0] <= value < _INT64[1] else None
    if kind is float:
        return "number" if math.isfinite(value) else None
    return None


def sqlite_condition(
    column: str, condition: ExtraCondition, *, mark: str = "?"
) -> tuple[str, list[Any]]:
    """SQLite's SQL for `condition` on a JSON text `column` (`column` is a trusted name; the
    JSON path and the value are parameters, written as `mark`; keys were validated as
    identifiers). Used by the
    SQLite saver and by the Django saver on SQLite, whose own JSON lookup cannot tell `true`
    from the string "true"."""
    path = f'$."{condition.key}"'
    kind = condition.kind
    if kind == "text":
        sql = f"json_type({column}, ?) = 'text' AND json_extract({column}, ?) = ?"
        return sql.replace("?", mark), [path, path, condition.value]
    if kind == "number":
        sql = (
            f"json_type({column}, ?) IN ('integer', 'real') AND json_extract({column}, ?) = ?"
        )
        return sql.replace("?", mark), [path, path, condition.value]
    return f"json_type({column}, {mark}) = {mark}", [path, kind]


def record_metadata(record: CheckpointRecord) -> CheckpointMetadata:
    """Just enough metadata for `metadata_matches` (source, step, extra), without decoding
    the checkpoint's values: from the parts a saver decoded, else from the stored `meta`."""
    extra = record.parts[2] if record.parts is not None else serde.loads(record.meta)[1]
    return CheckpointMetadata(record.source, record.step, extra=extra)  # type: ignore[arg-type]


def matches_leftover(
    records: Iterable[CheckpointRecord], leftover: Mapping[str, Any], limit: int | None
) -> list[CheckpointRecord]:
    """The records (newest first) whose metadata matches `leftover`, at most `limit`."""
    kept = [r for r in records if metadata_matches(record_metadata(r), leftover)]
    return kept[:limit] if limit is not None else kept
