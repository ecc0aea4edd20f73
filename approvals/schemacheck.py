"""JSON Schema validation of values people type, with `multipleOf` checked exactly.

`jsonschema` checks `multipleOf` by float division, so for the usual money schema
(`"multipleOf": 0.01`) it refuses 19.99, 0.07 and 1250.07: 19.99 / 0.01 is
1998.9999999999998. A number here is checked as the decimal it was written as (its shortest
`repr`, which is what a form field or a JSON body gave) with exact rational arithmetic, so
19.99 is a multiple of 0.01 and 12.345 is not, at any magnitude. Every other keyword is
Draft 2020-12's own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError


def _exact(number: Any) -> Fraction | None:
    """`number` as the decimal its repr writes, exactly; None for inf and nan."""
    try:
        return Fraction(repr(number))
    except (ValueError, OverflowError):
        return None


def _multiple_of(
    validator: Any, divisor: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "number"):
        return
    value, step = _exact(instance), _exact(divisor)
    if value is None or not step or value % step:
        yield ValidationError(f"{instance!r} is not a multiple of {divisor!r}")


SchemaValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"multipleOf": _multiple_of}
)


def validator_for(schema: Mapping[str, Any]) -> Any:
    """A Draft 2020-12 validator of `schema` whose `multipleOf` is exact (see above)."""
    return SchemaValidator(schema)


def decimal_places(spec: Mapping[str, Any]) -> int | None:
    """How many decimals a number property is typed with: those of a `multipleOf` that is a
    power of ten (0.01 -> 2, 1 -> 0), else 2 for `"format": "money"` (0 in yen, as the
    review page shows it); None when the schema does not fix them."""
    step = spec.get("multipleOf")
    if isinstance(step, int | float) and not isinstance(step, bool):
        exact = _exact(step)
        if exact is not None and exact > 0 and exact.numerator == 1:
            places = len(str(exact.denominator)) - 1
            if exact.denominator == 10**places:
                return places
        if exact is not None and exact > 0 and exact.denominator == 1:
            return 0
    if spec.get("format") == "money":
        return 0 if str(spec.get("x-currency", "")).upper() == "JPY" else 2
    return None


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _decimals(step: Any) -> int | None:
    """2 for 0.01: how many decimal places a multiple of `step` may have, if that is all
    `multipleOf` says (a power of ten); None otherwise."""
    exact = _exact(step)
    if exact is None or exact <= 0 or exact.numerator != 1:
        return None
    places = len(str(exact.denominator)) - 1
    return places if exact.denominator == 10**places else None


def said(error: ValidationError) -> str:
    """What a person reads for a refused value: the fix, in words ("Enter 0 or more."), for
    the keywords forms meet; jsonschema's own message otherwise."""
    limit = error.validator_value
    match error.validator:
        case "minimum":
            return f"Enter {_num(limit)} or more."
        case "exclusiveMinimum":
            return f"Enter more than {_num(limit)}."
        case "maximum":
            return f"Enter {_num(limit)} or less."
        case "exclusiveMaximum":
            return f"Enter less than {_num(limit)}."
        case "minLength":
            return ("This cannot be empty." if limit == 1
                    else f"Enter at least {limit} characters.")
        case "maxLength":
            return f"Enter at most {limit} characters (this has {len(error.instance)})."
        case "multipleOf":
            places = _decimals(limit)
            if places == 0:
                return "Enter a whole number."
            if places is not None:
                return f"Use at most {places} decimal place{'s' if places > 1 else ''}."
            return f"Enter a multiple of {_num(limit)}."
        case "enum":
            return f"Choose one of: {', '.join(str(v) for v in limit)}."
        case "pattern":
            return f"Enter it in the expected form (pattern {limit})."
        case "minItems":
            return f"Give at least {limit} item{'s' if limit != 1 else ''}."
        case "maxItems":
            return f"Give at most {limit} item{'s' if limit != 1 else ''}."
    return str(error.message)
