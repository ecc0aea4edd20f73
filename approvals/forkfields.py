"""The fork form's input for one state field: typed where the state declares a plain type, JSON
otherwise.

A person forking a thread edits a name or an amount far more often than a list, and asking for
JSON there made them type `"Dan Okafor"` with its quotes, or see "Fix it or reset the field"
for `Dan`. So a field declared `str` is a text box (what is typed is the value), `int`, `float`
and `Decimal` are number boxes, `bool` is a yes/no choice, a `Literal` or an `Enum` is a list of
its values. Everything else (lists, dicts, dataclasses, optional and union types, a value that
does not match its declared type) stays a JSON text, as before.

Each typed field cleans to the JSON value the JSON text would have given for the same edit
(a `Decimal` as its text, as the state's JSON shows it), so the form compares, checks and
applies both kinds alike.
"""

from __future__ import annotations

import enum
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from approvals.diff import pretty
from approvals.jsonvalues import plain_type

# A text longer than this, or on several lines, is edited in a text area.
_ONE_LINE = 80


@dataclass(frozen=True)
class StateInput:
    field: forms.Field
    shown: str  # what the form shows first
    typed: bool  # the field cleans to the value itself (else to JSON text, parsed by the form)


def state_input(name: str, annotation: Any, value: Any) -> StateInput:
    """The form field for state field `name`, declared `annotation` (None: not known), whose
    value at the checkpoint is `value`."""
    plain = plain_type(annotation) if annotation is not None else None
    if plain is str and isinstance(value, str):
        return _typed(name, value, _text, value, long=len(value) > _ONE_LINE or "\n" in value)
    if plain is bool and isinstance(value, bool):
        field = forms.TypedChoiceField(
            label=name, required=False, coerce=lambda chosen: chosen == "true",
            choices=[("true", "true"), ("false", "false")],
        )
        return StateInput(field, "true" if value else "false", typed=True)
    if plain is int and type(value) is int:
        return _typed(name, str(value), _whole, value)
    if plain is float and type(value) in (int, float) and math.isfinite(value):
        return _typed(name, repr(value), _number, value)
    if plain is Decimal and isinstance(value, Decimal) and value.is_finite():
        return _typed(name, str(value), _decimal, value)
    choices = _choices(plain)
    current = value.value if isinstance(value, enum.Enum) else value
    if choices and current in choices and type(current) in (str, int, bool):
        field = forms.TypedChoiceField(
            label=name, required=False, coerce=json.loads,
            choices=[(json.dumps(c), str(c)) for c in choices],
        )
        return StateInput(field, json.dumps(current), typed=True)
    text = pretty(value)
    return StateInput(_json_text(name, rows=min(8, text.count("\n") + 2)), text, typed=False)


def unset_input(name: str, annotation: Any = None) -> StateInput:
    """The input for state field `name`, declared `annotation`, where the checkpoint holds no
    value for it (a TypedDict key no node has written yet): empty, typed as `state_input`
    types a set field (a name is typed without JSON quotes); left empty, it stays unset."""
    plain = plain_type(annotation) if annotation is not None else None
    parse = {str: _text, int: _whole, float: _number, Decimal: _decimal}.get(plain)
    if parse is not None:
        made = _typed(name, "", _or_unset(parse), None)
        made.field.widget.attrs["placeholder"] = "not set"
        made.field.help_text = "Not set at this checkpoint. Left empty, it stays unset."
        return made
    choices = [(json.dumps(c), str(c)) for c in _choices(plain)]
    if plain is bool:
        choices = [("true", "true"), ("false", "false")]
    if choices:
        field = forms.TypedChoiceField(
            label=name, required=False, coerce=json.loads, empty_value=None,
            choices=[("", "not set"), *choices],
            help_text="Not set at this checkpoint.",
        )
        return StateInput(field, "", typed=True)
    field = _json_text(name, rows=2, placeholder="not set",
                       help_text="Not set at this checkpoint. A JSON value sets it.")
    return StateInput(field, "", typed=False)


def _or_unset(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse`, except that an empty text is no value (the form leaves the field unset)."""
    return lambda text: parse(text) if text.strip() else None


def _json_text(name: str, *, rows: int, placeholder: str = "", help_text: str = ""
               ) -> forms.CharField:
    attrs = {"rows": rows, "class": "json", "spellcheck": "false"}
    if placeholder:
        attrs["placeholder"] = placeholder
    return forms.CharField(label=name, required=False, strip=False, help_text=help_text,
                           widget=forms.Textarea(attrs=attrs))


def _choices(plain: Any) -> list[Any]:
    """The JSON values a `Literal[...]` or an `Enum` allows; [] for any other type."""
    if typing.get_origin(plain) is typing.Literal:
        args = list(typing.get_args(plain))
        return args if all(isinstance(a, str | int | bool) for a in args) else []
    if isinstance(plain, type) and issubclass(plain, enum.Enum):
        values = [member.value for member in plain]
        return values if all(isinstance(v, str | int) for v in values) else []
    return []


def _typed(name: str, shown: str, parse: Callable[[str], Any], value: Any,
           long: bool = False) -> StateInput:
    widget: forms.Widget
    if long:
        widget = forms.Textarea(attrs={"rows": min(8, shown.count("\n") + 2)})
    elif parse is _text:
        widget = forms.TextInput()
    else:
        widget = forms.TextInput(attrs={"inputmode": "numeric" if parse is _whole
                                        else "decimal", "class": "number"})
    return StateInput(_Typed(parse, label=name, widget=widget), shown, typed=True)


class _Typed(forms.CharField):
    """Text typed into the form, made into the state field's JSON value by `parse`."""

    def __init__(self, parse: Callable[[str], Any], **kwargs: Any) -> None:
        self.parse = parse
        # no length cap of its own: the state's text may be an article (the request's size
        # limit holds), and a field sent back unchanged must never be refused
        super().__init__(required=False, strip=False, **kwargs)

    def clean(self, value: Any) -> Any:
        if value is None:
            return None  # not sent: unchanged (the form skips it), so nothing to refuse
        text = super().clean(value)
        return self.parse(text.replace("\r\n", "\n"))


def _text(text: str) -> str:
    return text  # a NUL is refused by CharField's own validator (PostgreSQL stores none)


def _whole(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValidationError("Enter a whole number, such as 3.") from None


def _number(text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValidationError("Enter a number, such as 2.5.")
    return number


def _decimal(text: str) -> str:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ValidationError("Enter a number, such as 40.00.")
    return str(number)
