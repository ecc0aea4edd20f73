"""Forms: a review's editable fields generated from its JSON Schema, decisions, forks, ops."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.forms.fields import InvalidJSONInput, JSONString
from django.utils.safestring import SafeString

from approvals.diff import to_jsonable
from approvals.forkfields import state_input, unset_input
from approvals.jsonvalues import (
    MAX_TEXT_CHARS,
    JSONValueError,
    check_json_value,
    check_state_value,
    parse_json,
)
from approvals.models import Decision
from approvals.schemacheck import decimal_places, said, validator_for
from approvals.templating import escape_printed, form_renderer
from orchestration.runtime.runs import RunAction

LONG_TEXT = 120


class SafeJSONField(forms.JSONField):
    """Django's JSONField with `parse_json`'s limits: too deep, NaN or a 5,000-digit integer
    is a field error, not a 500 (Django's own catches only `JSONDecodeError`)."""

    def to_python(self, value: Any) -> Any:
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, list | dict | int | float | JSONString):
            return value
        try:
            converted = parse_json(value)
        except JSONValueError as exc:
            raise ValidationError(str(exc), code="invalid") from None
        return JSONString(converted) if isinstance(converted, str) else converted

    def prepare_value(self, value: Any) -> Any:
        # No value shows as an empty box, which reads back as no value (`to_python`); Django
        # would print "null", which a person then has to delete or submit as data.
        return "" if value is None else super().prepare_value(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return parse_json(data)
        except JSONValueError:
            return InvalidJSONInput(data)


def text_field(**kwargs: Any) -> forms.CharField:
    """Free text a person writes (comment, reason, response), within `MAX_TEXT_CHARS`."""
    rows = kwargs.pop("rows", 3)
    return forms.CharField(
        max_length=MAX_TEXT_CHARS, widget=forms.Textarea(attrs={"rows": rows}), **kwargs
    )


def schema_field(name: str, spec: Mapping[str, Any], required: bool) -> forms.Field:
    """A typed form field for one JSON Schema property (string/number/integer/boolean/enum)."""
    label = spec.get("title") or name.replace("_", " ").capitalize()
    common: dict[str, Any] = {
        "label": label, "required": required, "help_text": spec.get("description", "")
    }
    kind = spec.get("type")
    if "enum" in spec:
        choices = [(json.dumps(v), str(v)) for v in spec["enum"]]
        if not required:
            choices.insert(0, ("", "—"))
        return forms.TypedChoiceField(
            choices=choices, coerce=json.loads, empty_value=None, **common
        )
    if kind == "boolean":
        return forms.BooleanField(**{**common, "required": False})
    if kind == "integer":
        return forms.IntegerField(
            min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
        )
    if kind == "number":
        places = decimal_places(spec)
        if places is not None:
            return DecimalsField(
                places, min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
            )
        return forms.FloatField(
            min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
        )
    if kind == "string":
        max_length = spec.get("maxLength")
        widget = forms.Textarea(attrs={"rows": 4}) if (
            spec.get("format") == "textarea" or (max_length or 0) > LONG_TEXT
        ) else None
        return forms.CharField(
            max_length=max_length, min_length=spec.get("minLength"), widget=widget,
            strip=True, **common,
        )
    # arrays, objects and untyped values: edit as JSON
    return SafeJSONField(widget=forms.Textarea(attrs={"rows": 4}), **common)


class DecimalsField(forms.DecimalField):
    """A number the schema types with a fixed count of decimals (money: cents, see
    `schemacheck.decimal_places`). It shows 1250.0 as "1250.00", steps by 0.01 in the
    browser, refuses 12.345 with Django's own message, and gives the run a JSON number
    (a float, as `FloatField` would), not a `Decimal`."""

    def __init__(self, places: int, **kwargs: Any) -> None:
        super().__init__(decimal_places=places, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            try:
                return format(value, f".{self.decimal_places}f")
            except (ValueError, OverflowError):
                return value
        return value

    def clean(self, value: Any) -> Any:
        cleaned = super().clean(value)
        return None if cleaned is None else float(cleaned)


# A widget's markup with its value left out, per field definition: rendering a widget through
# its template (attrs, ids, the renderer) was most of the decision form's cost on every review
# page, yet it is the same for every review with the same schema except for the value.
# key -> (markup with VALUE_SLOT where the escaped value goes, markup for no value).
_widget_markup: dict[tuple[Any, ...], tuple[str, str]] = {}
_WIDGET_MARKUP_MAX = 2048
VALUE_SLOT = "stepwise-value-slot-4c1f9e"  # nothing in it that escaping changes
# Widgets whose value is only printed, escaped, in one place (`value="..."` or the textarea's
# text) and changes nothing else: a select's or checkbox's value picks options, attributes.
_SLOT_WIDGETS = (forms.TextInput, forms.NumberInput, forms.Textarea)


def _forget_widget_markup(**_: Any) -> None:
    _widget_markup.clear()  # templates or form settings changed (tests)


setting_changed.connect(_forget_widget_markup, dispatch_uid="stepwise-widget-markup")


class KeptWidgetBoundField(forms.BoundField):
    """A decision form field whose widget markup is rendered once per field definition
    (`field.markup_key`, set by `DecisionForm` from the schema property it was built from)
    and filled with this form's value. Only the default rendering of an unbound form's
    text, number and textarea widgets takes this path; errors, bound data (a form sent back
    with the user's input), other widgets and explicit arguments render as Django does."""

    def as_widget(self, widget: Any = None, attrs: Any = None, only_initial: bool = False) -> Any:
        key = getattr(self.field, "markup_key", None)
        if (widget is not None or attrs or only_initial or key is None or self.form.is_bound
                or self.form.renderer is not form_renderer or self.field.localize
                or type(self.field.widget) not in _SLOT_WIDGETS):
            return super().as_widget(widget, attrs, only_initial)
        full_key = (key, self.html_name, self.auto_id)
        kept = _widget_markup.get(full_key)
        if kept is None:
            kept = self._render_kept()
            if kept is None:
                return super().as_widget()
            if len(_widget_markup) >= _WIDGET_MARKUP_MAX:
                _widget_markup.clear()
            _widget_markup[full_key] = kept
        shown = self.field.widget.format_value(self.value())
        if shown is None:
            return SafeString(kept[1])
        return SafeString(kept[0].replace(VALUE_SLOT, str(escape_printed(shown)), 1))

    def _render_kept(self) -> tuple[str, str] | None:
        """The widget rendered by Django with the slot as its value and with no value; None if
        the slot does not come out exactly once (then this field is rendered each time)."""
        attrs = self.build_widget_attrs({})
        if self.auto_id and "id" not in self.field.widget.attrs:
            attrs.setdefault("id", self.auto_id)
        with_slot = self.field.widget.render(self.html_name, VALUE_SLOT, attrs, self.form.renderer)
        empty = self.field.widget.render(self.html_name, None, attrs, self.form.renderer)
        if str(with_slot).count(VALUE_SLOT) != 1 or VALUE_SLOT in empty:
            return None
        return str(with_slot), str(empty)


def _spec_key(name: str, spec: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The key a value field's widget markup is kept under: everything `schema_field` builds
    it from. None (render each time) for a spec that is not plain JSON."""
    try:
        return ("value", name, json.dumps(spec, sort_keys=True))
    except (TypeError, ValueError):
        return None


def shown_initials(fields: Iterable[forms.BoundField]) -> dict[str, Any]:
    """Field name -> what the field shows before anyone edits it (its initial value as its
    widget writes it; a checkbox's checked state): what reviewer.js compares the inputs with
    to tell an edit, also after a refused post has put what was sent into the fields."""
    shown: dict[str, Any] = {}
    for bound in fields:
        if bound.widget_type == "checkbox":
            shown[bound.html_name] = bool(bound.initial)
            continue
        text = bound.field.widget.format_value(bound.field.prepare_value(bound.initial))
        if isinstance(text, list | tuple):  # a select's: the chosen values
            text = text[0] if text else ""
        shown[bound.html_name] = "" if text is None else str(text)
    return shown


def refuse_unsaved_edits(form: forms.Form, keys: Iterable[str], answer: str, edit: str) -> None:
    """Refuse, on each field and above the form, an `answer` (Approve, Accept) posted with
    values changed in `keys`: it would send the values as asked and drop the changes (Enter
    in an edited field submits the first button); `edit` is the button that sends them."""
    changed = [key for key in keys if key in form.changed_data]
    for key in changed:
        form.add_error(key, f"Changed: not sent by {answer}.")
    if changed:
        labels = ", ".join(str(form.fields[key].label or key) for key in changed)
        form.add_error(None, (
            f"You changed {labels}, but {answer} sends the values as they were asked: use "
            f"“{edit}” to send your edits, or put the values back."
        ))


def refuse_unsent_response(form: forms.Form, key: str, answer: str, respond: str) -> None:
    """Refuse an `answer` (Approve, Accept) posted with text typed in the response field
    `key`: only `respond` sends that text, so the decision would drop it without a word."""
    if key in form.fields and (form.data.get(form.add_prefix(key)) or "").strip():
        form.add_error(key, f"Not sent by {answer}: only “{respond}” sends a response.")
        form.add_error(None, (
            f"You wrote a response, but {answer} does not send it: use “{respond}” to send "
            f"it, or clear the response to {answer.lower()} without it."
        ))


class DecisionForm(forms.Form):
    """The reviewer's decision. The edit fields come from the payload's schema; the action is
    the button pressed. Schema validation runs server-side whatever the browser checked."""

    default_renderer = form_renderer  # on every review page: widgets by Jinja2
    bound_field_class = KeptWidgetBoundField

    action = forms.ChoiceField(choices=Decision.Action.choices)
    comment = text_field(required=False)
    text = text_field(required=False, label="Response", rows=4)

    def __init__(self, *args: Any, review: Any, **kwargs: Any) -> None:
        self.review = review
        self.schema: dict[str, Any] | None = review.schema
        data = review.data if isinstance(review.data, Mapping) else {}
        super().__init__(*args, **kwargs)
        self.value_fields: list[str] = []
        if self.schema and "edit" in review.actions:
            required = set(self.schema.get("required", []))
            for name, spec in (self.schema.get("properties") or {}).items():
                key = f"value__{name}"
                # Fields are only required when editing; approve/reject ignore them.
                self.fields[key] = schema_field(name, spec, required=False)
                self.fields[key].schema_required = name in required
                # what the field was built from: its widget's markup is kept under it
                self.fields[key].markup_key = _spec_key(name, spec)
                if name in data:
                    self.initial[key] = (
                        json.dumps(data[name]) if "enum" in spec else data[name]
                    )
                self.value_fields.append(key)
        if "respond" not in review.actions:
            del self.fields["text"]
        for name in ("comment", "text"):  # the class's own fields, the same on every form
            if name in self.fields:
                self.fields[name].markup_key = ("base", name)
        self.fields["action"].choices = [
            c for c in Decision.Action.choices if c[0] in review.actions
        ]

    def value_bound_fields(self) -> list[forms.BoundField]:
        return [self[k] for k in self.value_fields]

    def shown_initials(self) -> dict[str, Any]:
        return shown_initials(self.value_bound_fields())

    def edited_values(self) -> dict[str, Any]:
        return {
            key.removeprefix("value__"): self.cleaned_data.get(key)
            for key in self.value_fields
            if self.cleaned_data.get(key) is not None
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        action = cleaned.get("action")
        if action == Decision.Action.REJECT and not (cleaned.get("comment") or "").strip():
            self.add_error("comment", "Say why you reject it: the comment goes back to the run.")
        if action == Decision.Action.RESPOND and not (cleaned.get("text") or "").strip():
            self.add_error("text", "Write a response.")
        if action == Decision.Action.EDIT and self.schema:
            self._validate_against_schema()
        elif action == Decision.Action.APPROVE:
            self._refuse_unsaved_edits()
        if action in (Decision.Action.APPROVE, Decision.Action.EDIT, Decision.Action.REJECT):
            # the response is sent by Respond only (a reject's reason is `comment`, its own
            # field): any other answer would drop it without a word
            label = {Decision.Action.APPROVE: "Approve", Decision.Action.REJECT: "Reject"}.get(
                action, "Save edits and approve")
            refuse_unsent_response(self, "text", label, "Respond")
        return cleaned

    def _refuse_unsaved_edits(self) -> None:
        """Approve decides on the values as they were asked: a form posted with some of them
        changed is refused, never approved with the edits dropped (a reviewer who typed a new
        amount and pressed Enter meant the new amount). A decision posted without the value
        fields at all (the keyboard's `a` from a list, the API) has nothing to lose."""
        if any(key in self.data for key in self.value_fields):
            refuse_unsaved_edits(self, self.value_fields, "Approve", "Save edits and approve")

    def _validate_against_schema(self) -> None:
        values = self.edited_values()
        for name, value in values.items():
            try:
                check_json_value(value)
            except JSONValueError as exc:
                self.add_error(f"value__{name}", str(exc))
                return
        asked = self.review.data if isinstance(self.review.data, Mapping) else {}
        for key in self.value_fields:
            name = key.removeprefix("value__")
            # a required text emptied is as missing as one left out (JSON Schema would take
            # ""; the node that reads it would not), unless it was asked empty
            emptied = values.get(name) == "" and asked.get(name) != ""
            if self.fields[key].schema_required and (name not in values or emptied):
                if key not in self.errors:
                    self.add_error(key, "This field is required.")
        validator = validator_for(self.schema)
        for error in validator.iter_errors(to_jsonable(values)):
            if error.validator == "required" and not error.path and all(
                f"value__{name}" in self.fields for name in error.validator_value
            ):
                continue  # each missing field says so on itself, above (or why it is empty)
            field = f"value__{error.path[0]}" if error.path else None
            if field not in self.fields:
                field = None
            if field is None or field not in self.errors:
                self.add_error(field, said(error))


class ForkForm(forms.Form):
    """The state at a checkpoint, one input per field (`forkfields.state_input`: typed for a
    plain declared type, JSON text otherwise); only changed fields are applied.

    A changed field is parsed (JSON within `parse_json`'s limits) and checked against the
    field's type in the graph's state schema (`types`: field name -> annotation), so a wrong
    value is refused on the form instead of failing the fork run later."""

    reason = text_field(
        rows=2, help_text="Why you fork here. Recorded in the thread's history."
    )

    def __init__(
        self, *args: Any, values: Mapping[str, Any], types: Mapping[str, Any] | None = None,
        writers: Sequence[str] = (), next_nodes: Sequence[str] = (), **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if len(writers) > 1:
            # Several nodes wrote the checkpoint in one step (a fan-out's branches): the edits
            # are applied as one node's output, which decides where the branch continues.
            keeps = ", ".join(next_nodes) or "the end"
            self.fields["as_node"] = forms.ChoiceField(
                label="Apply the edits as the output of", required=False,
                choices=[("", f"the node that keeps the next steps ({keeps})"),
                         *((w, w) for w in writers)],
                help_text=f"{', '.join(writers)} wrote this checkpoint in one step. The branch "
                          "continues from the chosen node's edges.",
            )
        self.types = dict(types or {})
        self.original = {name: to_jsonable(v) for name, v in values.items()}
        self.shown: dict[str, str] = {}
        self.state_fields: list[str] = []
        self.typed: set[str] = set()  # fields that clean to their value, not to JSON text
        inputs = [(name, state_input(name, self.types.get(name), value))
                  for name, value in values.items()]
        # A field the state declares that holds nothing at this checkpoint (a TypedDict key no
        # node has written yet) is offered empty, set only when given a value. It was not
        # offered at all, and a value posted for it was dropped without a word.
        unset = [name for name in self.types if name not in values]
        inputs += [(name, unset_input(name, self.types[name])) for name in unset]
        self.unset = {f"field__{name}" for name in unset}
        for name, made in inputs:
            key = f"field__{name}"
            self.fields[key] = made.field
            self.initial[key] = made.shown
            self.shown[key] = made.shown
            self.state_fields.append(key)
            if made.typed:
                self.typed.add(key)

    def state_bound_fields(self) -> list[forms.BoundField]:
        return [self[k] for k in self.state_fields]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        changed: dict[str, Any] = {}
        for key in self.state_fields:
            name = key.removeprefix("field__")
            if self.add_prefix(key) not in self.data or key in self.errors:
                continue  # not sent: unchanged; or refused by its own field already
            if key in self.unset and not str(self.data[self.add_prefix(key)]).strip():
                continue  # left empty: stays unset
            try:
                value = self._edited(key, cleaned.get(key))
                if value is _AS_SHOWN or value == self.original.get(name, _AS_SHOWN):
                    continue
                if name in self.types:
                    check_state_value(self.types[name], name, value)
            except JSONValueError as exc:
                self.add_error(key, f"{exc} Fix it, or put back what was shown to leave the "
                                    "field as it was.")
                continue
            changed[name] = value
        cleaned["changed"] = changed
        return cleaned

    def _edited(self, key: str, sent: Any) -> Any:
        """What field `key` holds as sent: a typed field's value, or its JSON text parsed
        (`_AS_SHOWN` when the text came back as shown, CRLF line ends aside)."""
        if key in self.typed:
            return sent
        raw = (sent or "").replace("\r\n", "\n")
        if raw.strip() == self.shown[key].strip():
            return _AS_SHOWN  # browsers send textarea lines with CRLF
        if not raw.strip():
            # an emptied list was "Not valid JSON: Expecting value: line 1 column 1" (a
            # reviewer trial); which empty value was meant is not ours to guess
            raise JSONValueError("The field is empty: enter its value as JSON, [] for an empty "
                                 "list, {} for an empty object, \"\" for empty text or null "
                                 "for no value.")
        return parse_json(raw)


# A JSON text sent back as the form showed it: unchanged, without parsing it.
_AS_SHOWN = object()


class OpsBulkForm(forms.Form):
    action = forms.ChoiceField(choices=RunAction.choices)
    runs = forms.TypedMultipleChoiceField(coerce=int, choices=(), label="Runs")
    reason = text_field(required=False, rows=2)
    confirm = forms.BooleanField(required=False)

    def __init__(self, *args: Any, run_ids: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any id is accepted here; `access_run` decides, per run, whether it may be touched.
        ids = run_ids if run_ids is not None else self.data.getlist("runs") if self.data else []
        self.fields["runs"].choices = [(str(i), str(i)) for i in ids]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("confirm") and not (cleaned.get("reason") or "").strip():
            self.add_error(
                "reason", "Every ops action needs a reason; it is recorded with your name."
            )
        return cleaned


class ReasonForm(forms.Form):
    reason = text_field(rows=2)
