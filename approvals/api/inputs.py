"""Validation of what callers send, before anything is written: a graph's input against the
JSON Schema of its input (the graph's `input_schema`, or its state when it declares none), a
decision's values against the review's schema (the validator the review form uses,
`schemacheck.validator_for`: Draft 2020-12 with an exact `multipleOf`). Both accept numbers
sent as numeric strings (`jsonvalues.numbers_from_strings`)."""

from __future__ import annotations

import decimal
import functools
import re
import typing
from collections.abc import Mapping
from typing import Any

import pydantic

from approvals.api.problems import ApiProblem
from approvals.diff import to_jsonable
from approvals.jsonvalues import numbers_from_strings
from approvals.models import ReviewRequest
from approvals.schemacheck import validator_for
from orchestration.runtime.registry import get_graph

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# What a numeric string may hold: JSON's number syntax (surrounding blanks aside), not all
# that Python's int(), float() or Decimal() take ("1_000", "+5", "٣", ".5", "NaN")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def int_range_message(number: int) -> str:
    shown = str(number) if len(str(number)) <= 40 else f"{str(number)[:20]}…"
    return (f"{shown} is outside the signed 64-bit integer range ({INT64_MIN} to "
            f"{INT64_MAX}), which is all a run can store; send a smaller number.")


def _out_of_range(prefix: str, value: Any) -> dict[str, list[str]]:
    """field -> message for every integer in `value` outside the signed 64-bit range."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {} if INT64_MIN <= value <= INT64_MAX else {prefix: [int_range_message(value)]}
    items = (value.items() if isinstance(value, Mapping)
             else enumerate(value) if isinstance(value, list | tuple) else ())
    errors: dict[str, list[str]] = {}
    for key, child in items:
        errors.update(_out_of_range(f"{prefix}.{key}", child))
    return errors


def _not_json_numbers(prefix: str, sent: Any, converted: Any) -> dict[str, list[str]]:
    """field -> message for every string in `sent` that became a number in `converted`
    (pydantic's lax conversion for a Decimal or number field) without being written as a
    JSON number."""
    if isinstance(sent, str):
        number = (isinstance(converted, int | float | decimal.Decimal)
                  and not isinstance(converted, bool))
        if number and not _JSON_NUMBER.fullmatch(sent.strip()):
            return {prefix: [f"{sent!r:.40} is not a number as JSON writes one; send a number "
                             "such as 199.99 (or the same as a string)."]}
        return {}
    if isinstance(sent, Mapping) and isinstance(converted, Mapping):
        pairs = [(k, sent[k], converted[k]) for k in sent if k in converted]
    elif isinstance(sent, list) and isinstance(converted, list | tuple) \
            and len(sent) == len(converted):
        pairs = list(zip(range(len(sent)), sent, converted, strict=True))
    else:
        return {}
    errors: dict[str, list[str]] = {}
    for key, one, other in pairs:
        errors.update(_not_json_numbers(f"{prefix}.{key}", one, other))
    return errors


@functools.cache
def _adapter(cls: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(cls)


def input_schema(graph_name: str) -> dict[str, Any]:
    """The JSON Schema of a graph's input: its input schema's fields, none of them extra.
    Shared by every caller (built once per compiled graph): read it, do not change it."""
    return _schema_of(get_graph(graph_name))


# Per compiled graph, which the registry imports once per process: generating the JSON Schema
# was a fifth of an API start's CPU. A graph registered again is a new object, a new entry.
@functools.cache
def _schema_of(graph: Any) -> dict[str, Any]:
    try:
        schema = _adapter(graph.input_schema).json_schema(mode="validation")
    except (pydantic.PydanticUserError, pydantic.errors.PydanticInvalidForJsonSchema):
        # a state holding types JSON Schema cannot describe: name the fields at least
        fields = (graph.spec.input or graph.spec.schema).fields
        schema = {"type": "object", "properties": {name: {} for name in fields},
                  "required": [n for n, f in fields.items()
                               if graph.spec.input and f.default is None]}
    return {**_as_the_engine_takes_it(schema, graph), "additionalProperties": False}


def _not_asked(graph: Any) -> tuple[frozenset[str], frozenset[str]]:
    """(fields the engine sets itself and refuses as input: managed values such as
    `RemainingSteps`; fields it starts with a default of its own, so not required, though a
    TypedDict class lists every key as required: a list with a reducer starts empty)."""
    fields = graph.spec.input or graph.spec.schema
    managed = frozenset(graph.spec.schema.managed) | frozenset(fields.managed)
    defaulted = frozenset(n for n, f in fields.fields.items() if f.default is not None)
    return managed, defaulted


def _as_the_engine_takes_it(schema: dict[str, Any], graph: Any) -> dict[str, Any]:
    """The JSON Schema as the engine takes an input (`_not_asked`)."""
    managed, defaulted = _not_asked(graph)
    properties = schema.get("properties") or {}
    required = [k for k in schema.get("required", ()) if k not in managed | defaulted]
    if managed.isdisjoint(properties) and required == schema.get("required", []):
        return schema
    shown = {**schema, "properties": {k: v for k, v in properties.items() if k not in managed}}
    if required:
        shown["required"] = required
    else:
        shown.pop("required", None)
    return shown


@functools.cache
def _input_validator(graph: Any) -> Any:
    return validator_for(_schema_of(graph))


def _errors_by_field(prefix: str, errors: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for error in errors:
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, Mapping):
            # named on the missing field itself, so a form shows it there
            # (one error per missing field, each carrying the whole `required` list)
            for name in error.validator_value:
                key = f"{prefix}.{path}.{name}" if path else f"{prefix}.{name}"
                message = f"{name!r} is required; give a value."
                if name not in error.instance and message not in out.get(key, []):
                    out.setdefault(key, []).append(message)
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            allowed = sorted(error.schema.get("properties") or {})
            for name in sorted(set(error.instance) - set(allowed)):
                key = f"{prefix}.{path}.{name}" if path else f"{prefix}.{name}"
                out.setdefault(key, []).append(
                    f"{name!r} may not be given; the fields allowed are {allowed}."
                )
            continue
        out.setdefault(f"{prefix}.{path}" if path else prefix, []).append(error.message)
    return out


def _validated(prefix: str, schema: Mapping[str, Any], value: Mapping[str, Any],
               title: str, validator: Any | None = None
               ) -> dict[str, Any]:
    """`value` with numeric strings turned into numbers, validated against `schema` (by
    `validator`, if built already); else 422 naming every wrong field (a non-number once, not
    also as 'not of type number')."""
    converted, problems = numbers_from_strings(schema, value)
    validator = validator or validator_for(schema)
    errors = {f"{prefix}.{k}": v for k, v in problems.items()}
    for key, messages in _out_of_range(prefix, converted).items():
        errors.setdefault(key, messages)
    for key, messages in _errors_by_field(
        prefix, sorted(validator.iter_errors(converted), key=str)
    ).items():
        errors.setdefault(key, messages)
    if errors:
        raise ApiProblem(422, title, errors)
    return converted


@functools.cache
def _checked_class(graph: Any) -> Any:
    """The class an input is converted with: the graph's input schema; for a TypedDict, one
    as the engine takes it (`_not_asked`)."""
    cls = graph.input_schema
    if (graph.spec.input or graph.spec.schema).kind != "typeddict":
        return cls
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # noqa: BLE001  unresolvable annotations: pydantic says what is wrong
        return cls
    managed, defaulted = _not_asked(graph)
    # The class's own optional keys (`total=False`, `NotRequired[...]`) stay optional: rebuilt
    # from its hints alone, every key became required, so a LangGraph-style partial state
    # (`class State(TypedDict, total=False)`) could not be started without all of them. A
    # hint's own `Required`/`NotRequired` decides first: under `from __future__ import
    # annotations` the class sorted its keys before its string annotations meant anything.
    required = getattr(cls, "__required_keys__", frozenset(hints))
    shown = {}
    for name, hint in hints.items():
        if name in managed:
            continue
        bare, said = _bare(hint)
        optional = name in defaulted or (not said if said is not None else name not in required)
        shown[name] = typing.NotRequired[bare] if optional else bare
    return typing.TypedDict(cls.__name__, shown)  # type: ignore[operator]


def _bare(hint: Any) -> tuple[Any, bool | None]:
    """`hint` without `Required[...]` or `NotRequired[...]` around it, and which of the two
    it said (True: required; None: neither)."""
    origin = typing.get_origin(hint)
    if origin is typing.Required or origin is typing.NotRequired:
        return typing.get_args(hint)[0], origin is typing.Required
    return hint, None


def check_input(graph_name: str, value: Any) -> dict[str, Any]:
    """The input converted to the state's types (a Decimal from "12.50"), or 422 naming each
    field that is wrong."""
    if not isinstance(value, Mapping):
        raise ApiProblem(422, "input must be a JSON object", {"input": ["must be an object"]})
    graph = get_graph(graph_name)
    value = _validated("input", _schema_of(graph), value,
                       f"input does not match the input schema of graph {graph_name!r}",
                       _input_validator(graph))
    cls = _checked_class(graph)
    try:
        converted = _adapter(cls).validate_python(dict(value))
    except pydantic.ValidationError as exc:
        by_field: dict[str, list[str]] = {}
        for e in exc.errors(include_url=False):
            path = ".".join(str(p) for p in e["loc"])
            by_field.setdefault(f"input.{path}" if path else "input", []).append(e["msg"])
        raise ApiProblem(422, f"input does not fit graph {graph_name!r}'s state", by_field) \
            from None
    except Exception:  # noqa: BLE001  a state whose types pydantic cannot build: keep JSON
        return dict(value)
    if isinstance(converted, Mapping):
        out = {k: converted[k] for k in value}
    else:
        out = {k: getattr(converted, k) for k in value}
    errors = _not_json_numbers("input", dict(value), out)
    for key, messages in _out_of_range("input", out).items():
        errors.setdefault(key, messages)
    if errors:
        raise ApiProblem(422, f"input does not fit graph {graph_name!r}'s state", errors)
    return out


def check_decision_values(review: ReviewRequest, action: str, values: Any) -> dict[str, Any]:
    """The values an `edit` decision records: the review's data for the schema's fields,
    overwritten by `values`, validated against the schema (as the review form does). An
    edit must change something: without values (none, null or `{}`) it is refused, not taken
    as an approve in disguise."""
    if action == "edit" and (values is None or (isinstance(values, Mapping) and not values)):
        fields = _editable(review)
        named = f" ({', '.join(fields)})" if fields else ""
        why = (f"An edit needs values: the fields to change{named}. To accept review "
               f"#{review.pk} as it is, use the action 'approve'.")
        raise ApiProblem(422, why, {"values": [why]})
    if values is None:
        return {}
    if action != "edit":
        raise ApiProblem(
            422, "values are only taken with the action 'edit'",
            {"values": ["only with action 'edit'"]},
        )
    if not isinstance(values, Mapping):
        raise ApiProblem(422, "values must be an object", {"values": ["must be an object"]})
    schema = review.schema
    if not schema:
        return to_jsonable(dict(values))
    props = schema.get("properties") or {}
    unknown = sorted(set(values) - set(props))
    if unknown:
        raise ApiProblem(
            422, f"review #{review.pk} has no field(s) {unknown}",
            {f"values.{k}": ["not a field of this review"] for k in unknown},
        )
    data = review.data if isinstance(review.data, Mapping) else {}
    merged = to_jsonable({**{k: data[k] for k in props if k in data}, **values})
    return _validated("values", schema, merged, f"values do not match review #{review.pk}'s schema")


def _editable(review: ReviewRequest) -> list[str]:
    """The names an edit of `review` may change: its schema's fields, else its data's keys
    (an Agent Inbox request's arguments)."""
    props = (review.schema or {}).get("properties") if isinstance(review.schema, Mapping) else None
    if isinstance(props, Mapping):
        return list(props)
    return list(review.data) if isinstance(review.data, Mapping) else []
