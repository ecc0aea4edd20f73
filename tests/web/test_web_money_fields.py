"""Amounts typed with cents: a number property whose schema fixes its decimals (`multipleOf`
0.01, or `"format": "money"`) is shown as 1250.00, not 1250.0, steps by cents in the
browser, and is checked exactly: jsonschema's float division refuses 19.99 as "not a
multiple of 0.01", which is every other amount a person types."""

from __future__ import annotations

import re
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from api_helpers import ApiClient
from django import forms
from django.urls import reverse

from approvals.forms import DecisionForm
from approvals.models import Decision
from approvals.schemacheck import decimal_places, said, validator_for
from orchestration.runtime import runs


@pytest.fixture
def admin(make_user) -> ApiClient:
    return ApiClient(make_user("admin", username="ada"))


CENTS = {"type": "number", "multipleOf": 0.01}
CLAIM = {"employee": "Bo", "vendor": "Lufthansa", "amount": Decimal("1250.00"),
         "description": "Flight"}


@pytest.mark.parametrize("amount", [19.99, 0.07, 1250.07, 1249.99, 9999999999.99, 5, 0.1])
def test_amounts_with_cents_are_multiples_of_a_cent(amount):
    assert not list(validator_for(CENTS).iter_errors(amount))


def test_plain_jsonschema_refuses_them_which_is_why_ours_checks_in_decimal():
    assert list(jsonschema.Draft202012Validator(CENTS).iter_errors(19.99))


@pytest.mark.parametrize("amount", [12.345, 0.1 + 0.2, 1e-7, float("inf")])
def test_amounts_finer_than_a_cent_are_refused_with_jsonschemas_message(amount):
    [error] = validator_for(CENTS).iter_errors(amount)
    assert error.message == f"{amount!r} is not a multiple of 0.01"


def test_other_keywords_are_draft_2020_12s_own():
    schema = {"type": "object", "properties": {"n": {**CENTS, "maximum": 10}},
              "required": ["n"]}
    messages = sorted(e.message for e in validator_for(schema).iter_errors({"n": 10.5}))
    assert messages == ["10.5 is greater than the maximum of 10"]
    assert [e.message for e in validator_for(schema).iter_errors({})] == [
        "'n' is a required property"]


@pytest.mark.parametrize(("spec", "places"), [
    ({"multipleOf": 0.01}, 2), ({"multipleOf": 0.001}, 3), ({"multipleOf": 1}, 0),
    ({"multipleOf": 5}, 0), ({"multipleOf": 0.5}, None), ({"format": "money"}, 2),
    ({"format": "money", "x-currency": "JPY"}, 0), ({}, None), ({"multipleOf": True}, None),
])
def test_the_decimals_a_schema_fixes(spec, places):
    assert decimal_places({"type": "number", **spec}) == places


def _form(amount: Any, data: dict[str, str] | None = None) -> DecisionForm:
    review = SimpleNamespace(
        schema={"type": "object", "properties": {"amount": {**CENTS, "title": "Amount"}}},
        data={"amount": amount}, actions=["approve", "edit"])
    return DecisionForm(data, review=review)


@pytest.mark.parametrize(("amount", "shown"), [(1250.0, "1250.00"), (7, "7.00"),
                                               (19.99, "19.99")])
def test_the_form_shows_the_amount_with_its_cents_and_steps_by_a_cent(amount, shown):
    for _ in range(2):  # the second form is filled from the kept markup
        form = _form(amount)
        html = str(form["value__amount"])
        assert f'value="{shown}"' in html and 'step="0.01"' in html
        assert html == forms.BoundField.as_widget(form["value__amount"])


def test_an_edit_with_cents_gives_the_run_a_json_number():
    form = _form(1250.0, {"action": "edit", "value__amount": "1249.99"})
    assert form.is_valid(), form.errors
    assert form.edited_values() == {"amount": 1249.99}
    assert type(form.edited_values()["amount"]) is float


def test_an_edit_finer_than_a_cent_is_refused_on_the_field():
    form = _form(1250.0, {"action": "edit", "value__amount": "1249.995"})
    assert not form.is_valid()
    assert form.errors["value__amount"] == [
        "Ensure that there are no more than 2 decimal places."]
    # said once, on the field: not also "'amount' is a required property" above the form
    assert form.non_field_errors() == []


def test_the_expense_review_page_shows_1250_00_and_an_edit_to_1249_99_is_paid(
    start_paused, client_as, django_capture_on_commit_callbacks
):
    review = start_paused("expense", CLAIM)
    reviewer = client_as("reviewer")
    page = reviewer.get(reverse("review", args=[review.pk])).content.decode()
    [field] = re.findall(r'<input[^>]*name="value__amount"[^>]*>', page)
    assert 'value="1250.00"' in field and 'step="0.01"' in field
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = reviewer.post(reverse("review-decide", args=[review.pk]),
                                 {"action": "edit", "value__amount": "1249.99"})
    assert response.status_code == 303, response.content.decode()[:2000]
    assert Decision.objects.get(review=review).values == {"amount": 1249.99}
    review.thread.refresh_from_db()
    assert review.thread.status == "done"


def test_the_api_takes_an_amount_with_cents_and_refuses_a_finer_one(
    admin, start_paused, django_capture_on_commit_callbacks
):
    review = start_paused("expense", CLAIM)
    refused = admin.post(f"/reviews/{review.pk}/decision",
                         {"action": "edit", "values": {"amount": 12.345}})
    assert refused.status_code == 422
    assert refused.json()["errors"] == {"values.amount": ["12.345 is not a multiple of 0.01"]}
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        taken = admin.post(f"/reviews/{review.pk}/decision",
                           {"action": "edit", "values": {"amount": 19.99}})
    assert taken.status_code == 200, taken.content
    assert Decision.objects.get(review=review).values == {"amount": 19.99}


@pytest.mark.parametrize(("spec", "value", "said_text"), [
    ({"minimum": 0}, -5.0, "Enter 0 or more."),
    ({"exclusiveMinimum": 0}, 0, "Enter more than 0."),
    ({"maximum": 10}, 10.5, "Enter 10 or less."),
    ({"multipleOf": 0.01}, 12.345, "Use at most 2 decimal places."),
    ({"multipleOf": 1}, 1.5, "Enter a whole number."),
    ({"multipleOf": 0.25}, 0.3, "Enter a multiple of 0.25."),
    ({"minLength": 1}, "", "This cannot be empty."),
    ({"maxLength": 3}, "abcd", "Enter at most 3 characters (this has 4)."),
    ({"enum": ["low", "high"]}, "mid", "Choose one of: low, high."),
    ({"type": "integer"}, 1.5, "1.5 is not of type 'integer'"),
])
def test_a_refused_value_is_said_as_the_fix(spec, value, said_text):
    """A reviewer typing -5 read "-5.0 is less than the minimum of 0", the value reformatted
    (found by hand): the form says what to enter instead."""
    [error] = validator_for(spec).iter_errors(value)
    assert said(error) == said_text


def test_the_review_form_says_the_fix_on_the_field():
    review = SimpleNamespace(
        schema={"type": "object", "properties": {"amount": {**CENTS, "exclusiveMinimum": 0}}},
        data={"amount": 10.0}, actions=["approve", "edit"])
    form = DecisionForm({"action": "edit", "value__amount": "-5"}, review=review)
    assert not form.is_valid()
    assert form.errors["value__amount"] == ["Enter more than 0."]
