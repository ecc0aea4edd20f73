"""Field-level state diffs (pure): what changed between two checkpoints' values."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

ChangeKind = Literal["added", "removed", "changed", "appended", "unchanged"]


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    kind: ChangeKind
    old: Any = None
    new: Any = None
    # for "appended": only the items added at the end of the list
    appended: tuple[Any, ...] = ()

    @property
    def is_change(self) -> bool:
        return self.kind != "unchanged"


def diff_states(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[FieldChange]:
    """Compare two states field by field, in a stable order (new's fields first, then removed).

    A list that only grew at its end is reported as "appended" with just the new items, which
    is how append-only (`topic`) fields change; anything else that differs is "changed".
    """
    old = old or {}
    new = new or {}
    changes: list[FieldChange] = []
    for name, value in new.items():
        if name not in old:
            changes.append(FieldChange(name, "added", new=value))
            continue
        before = old[name]
        if _equal(before, value):
            changes.append(FieldChange(name, "unchanged", old=before, new=value))
        elif _is_append(before, value):
            extra = tuple(value[len(before) :])
            changes.append(FieldChange(name, "appended", old=before, new=value, appended=extra))
        else:
            changes.append(FieldChange(name, "changed", old=before, new=value))
    for name, value in old.items():
        if name not in new:
            changes.append(FieldChange(name, "removed", old=value))
    return changes


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001  an exotic __eq__ must not break a page
        return to_jsonable(a) == to_jsonable(b)


def _is_append(before: Any, after: Any) -> bool:
    return (
        isinstance(before, list | tuple)
        and isinstance(after, list | tuple)
        and len(after) > len(before)
        and _equal(list(after[: len(before)]), list(before))
    )


# Values decoded from JSON (every review's data, most state) are only these types: checked by
# identity first, they skip the isinstance chain below (an ABC check per value for Mapping),
# which was most of the API's review list in its profile. Subclasses take the chain.
_SCALARS = frozenset({type(None), bool, int, float, str})


def to_jsonable(value: Any) -> Any:
    """A JSON-compatible rendering of a state value (for display and for editing as JSON)."""
    kind = type(value)
    if kind in _SCALARS:
        # inf - inf and nan - nan are nan, never 0: only a finite float passes
        return value if kind is not float or value - value == 0 else _non_finite(value)
    if kind is dict:
        return {k if type(k) is str else str(k): to_jsonable(v) for k, v in value.items()}
    if kind is list:
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return _non_finite(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((to_jsonable(v) for v in value), key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):  # pydantic
        return to_jsonable(value.model_dump(mode="json"))
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def _non_finite(value: float) -> str:
    """NaN and the infinities as text: JSON has no such numbers, and a JSON column refused
    the review a graph asked for with one in its data (the run failed on a CHECK constraint).
    As text, the reviewer sees the value and decides, and the form asks for a number."""
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


# Levels indented one per line; deeper ones are written on one line. Fully indented JSON
# grows with the square of its depth: 14 KB nested 1,000 deep printed as megabytes.
INDENT_LEVELS = 6
# Characters of one value a page shows; the rest is a link away (see `clip`).
VALUE_BUDGET = 8_000


def pretty(value: Any) -> str:
    """Indented JSON for a value, the way the pages show and edit state: indented to
    INDENT_LEVELS levels, compact below, so its size stays linear in the value's."""
    return "".join(_pieces(to_jsonable(value), 0))


@dataclass(frozen=True, slots=True)
class Clipped:
    """A value's JSON text cut to a page's budget; `total` is the length of the whole."""

    text: str
    total: int
    unshowable: bool = False

    @property
    def clipped(self) -> bool:
        return self.unshowable or len(self.text) < self.total


def clip(value: Any, budget: int = VALUE_BUDGET) -> Clipped:
    """`pretty(value)` cut to `budget` characters, with the whole text's length. A value past
    the budget is measured (`_pretty_len`), and written only up to the budget (`_pieces`):
    writing all of it cost 10 ms for the 7,500 short items of a long thread's log, shown
    8,000 characters at a time."""
    try:
        jsonable = to_jsonable(value)
        total = _pretty_len(jsonable, 0)
        if total <= budget:
            return Clipped("".join(_pieces(jsonable, 0)), total)
        written: list[str] = []
        length = 0
        for piece in _pieces(jsonable, 0):
            written.append(piece)
            length += len(piece)
            if length >= budget:
                break
    except (RecursionError, ValueError) as exc:  # nested past the interpreter's limit
        return Clipped(f"(nested too deeply to show here: {type(exc).__name__})", 0, True)
    return Clipped("".join(written)[:budget] + "\n…", total)


def _leaf(value: Any, level: int) -> bool:
    """Whether `value` is written on one line (`json.dumps`) at `level`."""
    return level >= INDENT_LEVELS or not isinstance(value, dict | list) or not value


def _pieces(value: Any, level: int) -> Iterator[str]:
    """`pretty`'s text for `value` at `level`, in pieces, in order: `clip` stops when it has
    enough."""
    if _leaf(value, level):
        yield json.dumps(value, ensure_ascii=False)
        return
    pad = "  " * (level + 1)
    is_dict = isinstance(value, dict)
    yield "{\n" if is_dict else "[\n"
    first = True
    for item in value.items() if is_dict else value:
        yield pad if first else ",\n" + pad
        first = False
        if is_dict:
            yield f"{json.dumps(item[0], ensure_ascii=False)}: "
            item = item[1]
        yield from _pieces(item, level + 1)
    yield "\n" + "  " * level + ("}" if is_dict else "]")


def _pretty_len(value: Any, level: int) -> int:
    """The length of `_pieces(value, level)` joined, without writing it. A container whose
    items are written on one line each is measured by one `json.dumps` of the whole container
    (C code): it writes the same items with ", " between them where `_pieces` puts ",\n" and
    a pad."""
    if _leaf(value, level):
        return len(json.dumps(value, ensure_ascii=False))
    n = len(value)
    # brackets, the newline after the opening one, ",\n" between items, and the newline and
    # pad before the closing one; each item on its own line after its pad
    frame = 2 + 1 + 2 * (n - 1) + 1 + 2 * level + 2 * (level + 1) * n
    items = value.values() if isinstance(value, dict) else value
    if level + 1 >= INDENT_LEVELS or _SCALARS.issuperset(map(type, items)) or all(
        _leaf(item, level + 1) for item in items
    ):
        # json.dumps: "[" + ", ".join(items) + "]"; a dict's items are `"key": value`
        return frame + len(json.dumps(value, ensure_ascii=False)) - 2 - 2 * (n - 1)
    if isinstance(value, dict):
        return frame + sum(
            len(json.dumps(k, ensure_ascii=False)) + 2 + _pretty_len(v, level + 1)
            for k, v in value.items()
        )
    return frame + sum(_pretty_len(item, level + 1) for item in value)
