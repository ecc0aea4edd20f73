"""The fork form's typed inputs (`approvals.forkfields`): a field declared `str`, `int`,
`float`, `Decimal`, `bool`, `Literal` or `Enum` is edited as what it is, not as JSON; lists,
records and optional fields stay JSON. Seen in a trial: forking the failed expense meant
typing `true` into a JSON box for `compliance_override` and `"80.00"`, quotes included, for
the amount."""

from __future__ import annotations

import enum
import re
from decimal import Decimal
from typing import Any, Literal

import pytest
import shown
from django.urls import reverse

from approvals.forkfields import state_input
from approvals.forms import ForkForm
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.models import Run, Thread
from orchestration.runtime.savers import DjangoCheckpointSaver

FLAGGED = {"expense_id": 104, "employee": "Dan Okafor", "vendor": "Shady Supplies Ltd",
           "amount": Decimal("75.00"), "description": "USB cables"}


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


def _form(values: dict[str, Any], types: dict[str, Any], data: dict[str, str] | None = None
          ) -> ForkForm:
    return ForkForm(data, values=values, types=types)


@pytest.mark.parametrize(("annotation", "value", "shown_as", "widget"), [
    (str, "Dan Okafor", "Dan Okafor", "TextInput"),
    (str, "two\nlines", "two\nlines", "Textarea"),
    (int, 104, "104", "TextInput"),
    (float, 12.5, "12.5", "TextInput"),
    (Decimal, Decimal("75.00"), "75.00", "TextInput"),
    (bool, False, "false", "Select"),
    (Literal["low", "high"], "high", '"high"', "Select"),
    (Tier, "gold", '"gold"', "Select"),
    (Tier, Tier.SILVER, '"silver"', "Select"),  # the state holds the member
    (list[str], ["a"], '[\n  "a"\n]', "Textarea"),
    (str | None, None, "null", "Textarea"),  # optional: JSON, where null can be typed
    (int, "not an int", '"not an int"', "Textarea"),  # a value off its type: JSON
])
def test_each_declared_type_gets_its_input(annotation, value, shown_as, widget):
    made = state_input("f", annotation, value)
    assert made.shown == shown_as
    assert type(made.field.widget).__name__ == widget
    assert made.typed == (widget != "Textarea" or annotation is str)


@pytest.mark.parametrize(("annotation", "value", "typed", "expected"), [
    (str, "Dan", "Dan Okafor", "Dan Okafor"),
    (str, "x", "", ""),
    (int, 1, " 7 ", 7),
    (float, 1.0, "2.50", 2.5),
    (Decimal, Decimal("75.00"), "80.00", "80.00"),
    (bool, False, "true", True),
    (Literal["low", "high"], "low", '"high"', "high"),
    (Tier, Tier.GOLD, '"silver"', "silver"),
])
def test_a_typed_edit_is_applied_as_the_value_typed(annotation, value, typed, expected):
    form = _form({"f": value}, {"f": annotation}, {"field__f": typed, "reason": "r"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["changed"] == {"f": expected}


@pytest.mark.parametrize(("annotation", "value", "typed", "error"), [
    (int, 1, "3.5", "Enter a whole number, such as 3."),
    (float, 1.0, "nan", "Enter a number, such as 2.5."),
    (Decimal, Decimal("1"), "12,50", "Enter a number, such as 40.00."),
    (bool, True, "yes", "Select a valid choice. yes is not one of the available choices."),
])
def test_a_typed_edit_that_is_not_its_type_is_refused_on_the_field(annotation, value, typed,
                                                                   error):
    form = _form({"f": value}, {"f": annotation}, {"field__f": typed, "reason": "r"})
    assert not form.is_valid()
    assert form.errors["field__f"] == [error]


def test_a_long_text_sent_back_unchanged_is_no_error_and_a_nul_is_refused():
    body = "A paragraph of the article. " * 400  # 11,200 characters
    form = _form({"body": body}, {"body": str}, {"field__body": body, "reason": "r"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["changed"] == {}
    form = _form({"body": body}, {"body": str}, {"field__body": "a\x00b", "reason": "r"})
    assert form.errors["field__body"] == ["Null characters are not allowed."]


def test_typed_fields_sent_back_as_shown_change_nothing():
    values = {"name": "Dan", "n": 104, "x": 12.5, "amount": Decimal("75.00"), "ok": False}
    types = {"name": str, "n": int, "x": float, "amount": Decimal, "ok": bool}
    shown_form = _form(values, types)
    data = {key: shown_form.initial[key] for key in shown_form.state_fields}
    form = _form(values, types, {**data, "reason": "r"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["changed"] == {}


def test_ops_fork_the_failed_expense_with_the_override_set_and_it_pays(
    client_as, make_user, django_capture_on_commit_callbacks
):
    """The demo's own story: the flagged vendor's payout fails; ops fork before it with
    `compliance_override` chosen true and the amount typed as 80.00, and the branch pays."""
    from demo.models import Payout
    from demo.workflows.expense import Expense

    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("expense", Expense(**FLAGGED), user=make_user("ops"))
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    thread = run.thread
    saver = DjangoCheckpointSaver()
    approved = next(t for t in saver.list(CheckpointConfig(thread.thread_id))
                    if t.checkpoint.next == ("payout",))
    ops = client_as("ops")
    url = reverse("checkpoint-fork", args=[thread.thread_id, approved.checkpoint.id])
    page = ops.get(url)
    inputs = shown.input_values(page)
    assert inputs["field__amount"] == "75.00" and inputs["field__employee"] == "Dan Okafor"
    assert re.search(r'<option value="false" selected>false</option>', page.content.decode())
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = ops.post(url, {"field__compliance_override": "true", "field__amount": "80.00",
                                  "reason": "cleared by compliance"})
    assert response.status_code == 303, response.content.decode()[:3000]
    thread.refresh_from_db()
    assert thread.status == Thread.Status.DONE
    head = saver.get_tuple(CheckpointConfig(thread.thread_id)).checkpoint.values
    assert head["compliance_override"] is True and head["amount"] == Decimal("80.00")
    assert [p.amount for p in Payout.objects.filter(expense_id=104)] == [Decimal("80.00")]


def test_a_fork_through_the_api_stores_each_value_as_the_state_declares_it(
    make_user, django_capture_on_commit_callbacks
):
    """The API's JSON "80.00" for a `Decimal` field was stored as the text "80.00": the
    branch's state held a str where the graph says Decimal."""
    from api_helpers import ApiClient

    from demo.workflows.expense import Expense

    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("expense", Expense(**FLAGGED), user=make_user("ops"))
    thread = Thread.objects.get(pk=run.thread_id)
    saver = DjangoCheckpointSaver()
    approved = next(t for t in saver.list(CheckpointConfig(thread.thread_id))
                    if t.checkpoint.next == ("payout",))
    api = ApiClient(make_user("ops"))
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/threads/{thread.thread_id}/checkpoints/{approved.checkpoint.id}/fork",
            {"values": {"amount": "80.00", "compliance_override": True}, "reason": "cleared"})
    assert response.status_code == 201, response.content
    head = saver.get_tuple(CheckpointConfig(thread.thread_id)).checkpoint.values
    assert type(head["amount"]) is Decimal and head["amount"] == Decimal("80.00")


def test_a_declared_field_the_checkpoint_has_no_value_for_is_offered_and_set_only_if_given(
    client_as, make_user, django_capture_on_commit_callbacks
):
    """A `TypedDict(total=False)` state's key no node has written: found by hand, the fork
    form did not offer it, and a value posted for it was dropped without a word."""
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("web_partial", {"subject": "Printer"}, user=make_user("ops"))
    saver = DjangoCheckpointSaver()
    config = CheckpointConfig(run.thread.thread_id)
    head = saver.get_tuple(config)
    assert "priority" not in head.checkpoint.values
    ops = client_as("ops")
    url = reverse("checkpoint-fork", args=[run.thread.thread_id, head.checkpoint.id])
    page = ops.get(url).content.decode()
    assert re.search(r'<input [^>]*name="field__priority"[^>]*placeholder="not set"', page)
    # the way back is not a "Cancel" beside a form that starts runs (cancel is a run action)
    assert ">Back to the thread</a>" in page and ">Cancel</a>" not in page

    def fork(data: dict[str, str]) -> Any:
        with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
            return ops.post(url, {"field__subject": "Printer", "field__steps": "1", **data})

    assert fork({"field__priority": "", "reason": "as it is"}).status_code == 303
    assert "priority" not in saver.get_tuple(config).checkpoint.values
    refused = fork({"field__priority": '"high"', "reason": "wrong type"})
    assert refused.status_code == 400 and "priority" in refused.content.decode()
    assert fork({"field__priority": "3", "reason": "set it"}).status_code == 303
    assert saver.get_tuple(config).checkpoint.values == {"subject": "Printer", "priority": 3,
                                                         "steps": 1}


def test_unset_fields_follow_the_values_in_the_order_the_state_declares_them():
    """They came from a set difference, in an order that changed from one process to the
    next (found in review)."""
    types = {"d": int, "a": int, "c": str, "b": list[str], "e": bool}
    form = _form({"a": 1, "e": True}, types)
    assert form.state_fields == ["field__a", "field__e", "field__d", "field__c", "field__b"]
    assert form["field__d"].help_text.startswith("Not set at this checkpoint")


@pytest.mark.parametrize(("annotation", "typed", "value"), [
    (str, "Jane", "Jane"),
    (int, "3", 3),
    (Decimal, "40.50", "40.50"),
    (bool, "true", True),
    (Literal["low", "high"], '"high"', "high"),
    (list[str], '["a"]', ["a"]),
])
def test_an_unset_field_is_typed_as_a_set_one_and_empty_leaves_it_unset(annotation, typed, value):
    """A name typed into an unset `str` field needed JSON quotes and got "Not valid JSON ...
    reset the field" (found by hand): unset fields take the same typed inputs as set ones."""
    data = {"reason": "r", "field__a": "1"}
    form = _form({"a": 1}, {"a": int, "x": annotation}, {**data, "field__x": typed})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["changed"] == {"x": value}
    left = _form({"a": 1}, {"a": int, "x": annotation}, {**data, "field__x": ""})
    assert left.is_valid(), left.errors
    assert left.cleaned_data["changed"] == {}


def test_an_emptied_json_field_says_how_to_write_an_empty_value():
    """A reviewer cleared a list on the fork form and got "Not valid JSON: Expecting value:
    line 1 column 1 (char 0)", with no word of what to enter instead."""
    values, types = {"tags": ["a", "b"], "name": "x"}, {"tags": list[str], "name": str}
    emptied = _form(values, types, {"field__tags": "", "field__name": "x", "reason": "r"})
    assert not emptied.is_valid()
    (said,) = emptied.errors["field__tags"]
    assert "[] for an empty list" in said and "Expecting value" not in said
    cleared = _form(values, types, {"field__tags": "[]", "field__name": "x", "reason": "r"})
    assert cleared.is_valid(), cleared.errors
    assert cleared.cleaned_data["changed"] == {"tags": []}
