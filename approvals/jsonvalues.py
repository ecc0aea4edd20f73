"""JSON a person types into a form: parsed within limits, checked against the graph's types.

`json.loads` alone turns hostile input into a 500 (a `RecursionError` past ~1,000 levels, a
`ValueError` past 4,300 digits) and accepts `NaN`/`Infinity`, which no JSON column stores, so
the worker failed on them later. Everything here raises `JSONValueError` with the reason
instead, which forms show on the field and views answer with a 400 before writing anything.
"""

from __future__ import annotations

import json
import math
import re
import typing
from collections.abc import Mapping
from typing import Any

# Deep enough for any state a person edits by hand; far below the parser's recursion limit.
MAX_DEPTH = 64
# Digits of one integer: 64-bit ids and amounts fit with room to spare.
MAX_INT_DIGITS = 40
# Free text (comments, reasons, responses): a page of text, not a file.
MAX_TEXT_CHARS = 4_000

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_NUL_ESCAPE = re.compile(r"\\u0000", re.IGNORECASE)


class JSONValueError(ValueError):
    """A value was refused; the message says why and what to send instead."""


def parse_json(raw: str) -> Any:
    """`raw` parsed as JSON, or JSONValueError saying what is wrong with it."""
    if "\x00" in raw or _NUL_ESCAPE.search(raw):
        # PostgreSQL's jsonb refuses it: the write would fail after the form said yes
        raise JSONValueError("NUL characters (\\u0000) cannot be stored; remove them.")
    _check_depth(raw)
    try:
        value = json.loads(raw, parse_int=_parse_int, parse_constant=_refuse_constant,
                           parse_float=_parse_float)
    except JSONValueError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONValueError(f"Not valid JSON: {exc}.") from None
    except (RecursionError, ValueError) as exc:  # a limit we did not foresee: still the user's
        raise JSONValueError(f"Not accepted as JSON: {exc}.") from None
    return value


def check_json_value(value: Any, depth: int = 0) -> None:
    """Refuse what `parse_json` refuses in a value that is already parsed (an API body, a value
    from another form field): too deep, non-finite numbers, integers too long."""
    if depth > MAX_DEPTH:
        raise JSONValueError(f"Nested more than {MAX_DEPTH} levels deep; flatten the value.")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        if "\x00" in value:
            raise JSONValueError("NUL characters (\\u0000) cannot be stored; remove them.")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JSONValueError(_NON_FINITE)
    elif isinstance(value, int):
        _parse_int(str(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            check_json_value(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_json_value(item, depth + 1)


_NON_FINITE = "NaN and Infinity are not JSON numbers; send a finite number or null."


def _check_depth(raw: str) -> None:
    # Counted on the text, before parsing: the parser itself is what overflows the stack.
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub("", raw)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise JSONValueError(f"Nested more than {MAX_DEPTH} levels deep; flatten the value.")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONValueError(
            f"An integer of {len(text.lstrip('-'))} digits is too long (at most "
            f"{MAX_INT_DIGITS}); send it as a string."
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONValueError(f"{text} is too large for a number; {_NON_FINITE}")
    return value


def _refuse_constant(name: str) -> Any:
    raise JSONValueError(f"{name}: {_NON_FINITE}")


# ---------------------------------------------------------------- state fields


def check_state_value(annotation: Any, field: str, value: Any) -> Any:
    """`value` validated as the state field's declared type (pydantic, lax: an int is a valid
    float, "5" is not an int), returned converted (a dict becomes the field's dataclass).
    Raises JSONValueError naming what was expected."""
    from pydantic import TypeAdapter, ValidationError

    try:
        adapter = TypeAdapter(_checked_type(annotation))
    except Exception:  # noqa: BLE001  a type pydantic cannot check: the graph checks it
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors()[:3])
        raise JSONValueError(
            f"Not a valid {_type_name(annotation)} for field {field!r}: {problems}."
        ) from None


def plain_type(annotation: Any) -> Any:
    """The field's type without `Annotated[...]` reducers and `Required`/`NotRequired`."""
    annotation = _required_stripped(annotation)
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = _required_stripped(typing.get_args(annotation)[0])
    return annotation


def _required_stripped(annotation: Any) -> Any:
    while typing.get_origin(annotation) in (typing.Required, typing.NotRequired):
        annotation = typing.get_args(annotation)[0]
    return annotation


def _checked_type(annotation: Any) -> Any:
    """What a value of the field is checked against: its type with the constraints declared
    beside it (`Annotated[Decimal, Field(max_digits=12)]`, `annotated_types.Gt(0)`, pydantic
    validators), without its reducer. A reducer is callable; a constraint is not. Without
    them, a fork could store an amount the graph's own input refuses, and the run then
    failed on it at a later node."""
    annotation = _required_stripped(annotation)
    if typing.get_origin(annotation) is not typing.Annotated:
        return annotation
    base, *metadata = typing.get_args(annotation)
    constraints = [item for item in metadata if not callable(item)]
    base = _checked_type(base)
    return typing.Annotated[base, *constraints] if constraints else base


def _type_name(annotation: Any) -> str:
    plain = plain_type(annotation)
    return getattr(plain, "__name__", None) if typing.get_origin(plain) is None and isinstance(
        plain, type
    ) else str(plain).replace("typing.", "")


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    got = f" (got {error['input']!r:.60})" if "input" in error else ""
    return f"{where + ': ' if where else ''}{error.get('msg', '')}{got}"


# ---------------------------------------------------------------- numbers sent as strings

_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def numbers_from_strings(
    schema: Mapping[str, Any] | None, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """`values` with a numeric string ("199.99") in a number or integer property of the JSON
    `schema` turned into that number, as people and clients send amounts (the README does).
    Used by every API input (a graph's start input, a review edit), so both accept the same
    things. Returns (converted values, field -> messages for strings that are not numbers)."""
    props = (schema or {}).get("properties") or {}
    out = dict(values)
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        kind = _numeric_kind(props.get(name))
        if kind is None or not isinstance(value, str):
            continue
        text = value.strip()
        if not _NUMBER_TEXT.fullmatch(text):
            example = "200" if kind == "integer" else "199.99"
            errors[name] = [f"{value!r:.40} is not a number; send a {kind} such as {example} "
                            "(or the same as a string)."]
            continue
        whole = not any(c in text for c in ".eE")
        if kind == "integer" and not whole:
            number = float(text) if len(text) <= 64 else math.inf
            if not (math.isfinite(number) and number.is_integer()):
                errors[name] = [f"{value!r:.40} is not a whole number; send an integer."]
                continue
            text = str(int(number))
            whole = True
        try:
            out[name] = _parse_int(text) if whole else _parse_float(text)
        except JSONValueError as exc:
            errors[name] = [str(exc)]
    return out, errors


def _numeric_kind(spec: Any) -> str | None:
    """"number"/"integer" when the property takes only numbers; None when a string is valid
    as it is (pydantic writes a Decimal as number-or-string: it converts the string itself)."""
    if not isinstance(spec, Mapping):
        return None
    kinds = spec.get("type")
    found = [kinds] if isinstance(kinds, str) else list(kinds or [])
    for option in [*spec.get("anyOf", ()), *spec.get("oneOf", ())]:
        if isinstance(option, Mapping):
            found.append(option.get("type"))
    if "string" in found:
        return None
    if "number" in found:
        return "number"
    return "integer" if "integer" in found else None
