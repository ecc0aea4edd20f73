"""The review page's kept markup: the decision form's widgets rendered once per field
definition and filled with each review's value (`approvals.forms.KeptWidgetBoundField`).
Whatever is kept, every page shows its own review's values, its own user's form and token,
and a form sent back with errors shows what the user typed."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from django import forms
from django.test import Client
from django.urls import reverse

from approvals import forms as approval_forms
from approvals.forms import DecisionForm

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["amount"],
    "properties": {
        "amount": {"type": "number", "title": "Amount", "minimum": 0,
                   "description": "In <b>EUR</b>, \"gross\""},
        "copies": {"type": "integer", "maximum": 10},
        "title": {"type": "string", "maxLength": 40, "minLength": 1},
        "notes": {"type": "string", "format": "textarea"},
        "kind": {"enum": ["a", "b"]},
        "urgent": {"type": "boolean"},
        "tags": {"type": "array"},
        "meta": {},
    },
}
VALUES = [None, "", 0, 1.5, -3.0, 12, True, "x<&\"'>y", "naïve ☃\nsecond line",
          [1, {"a": "<b>"}], {"k": None}, "stepwise-value-slot-4c1f9e"]


def _review(data: Any, actions: tuple[str, ...] = ("approve", "reject", "edit", "respond")
            ) -> Any:
    return SimpleNamespace(schema=SCHEMA, data=data, actions=list(actions))


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_kept_widget_markup_is_what_django_renders_for_every_value(value):
    approval_forms._forget_widget_markup()
    for _ in range(2):  # the first form fills the kept markup, the second uses it
        form = DecisionForm(review=_review(dict.fromkeys(SCHEMA["properties"], value)))
        for name in form.fields:
            bound = form[name]
            assert str(bound) == forms.BoundField.as_widget(bound), (name, value)
    kept = {key[0][1] for key in approval_forms._widget_markup}
    # text, number and textarea widgets are kept; a select's and checkbox's are not
    assert {"amount", "copies", "title", "notes", "tags", "meta", "comment", "text"} <= kept
    assert not {"kind", "urgent"} & kept


def test_same_field_name_with_another_definition_is_not_rendered_from_the_kept_markup():
    first = DecisionForm(review=_review({"amount": 5}))
    str(first["value__amount"])
    other_schema = {"properties": {"amount": {"type": "string", "format": "textarea"}}}
    other = DecisionForm(review=SimpleNamespace(schema=other_schema, data={"amount": "5"},
                                                actions=["approve", "edit"]))
    html = str(other["value__amount"])
    assert html.startswith("<textarea") and html == forms.BoundField.as_widget(
        other["value__amount"])


def test_a_bound_form_renders_the_users_input_not_the_kept_markup():
    review = _review({"amount": 5, "title": "Original"})
    str(DecisionForm(review=review)["value__title"])  # kept markup for the title
    bound = DecisionForm({"action": "edit", "value__title": "typed <here>", "value__amount": "x"},
                         review=review)
    assert not bound.is_valid()
    assert 'value="typed &lt;here&gt;"' in str(bound["value__title"])
    assert 'value="x"' in str(bound["value__amount"])
    assert 'aria-invalid="true"' in str(bound["value__amount"])


def _decision_form_html(page: str) -> str:
    start = page.index('<form class="decide"')
    return page[start:page.index("</form>", start)]


def _edit_review(make_review: Any, data: dict[str, Any]) -> Any:
    return make_review(payload={"kind": "review", "title": "Expense", "data": data,
                                "schema": SCHEMA, "actions": ["approve", "reject", "edit"]})


def test_two_reviews_with_the_same_schema_each_show_their_own_values(make_review, client_as):
    approval_forms._forget_widget_markup()
    first = _edit_review(make_review, {"amount": 12.5, "title": "Taxi <night>", "notes": "a"})
    second = _edit_review(make_review, {"amount": 99.75, "title": "Hotel", "tags": ["x"]})
    client = client_as("reviewer")
    pages = {}
    for review in (first, second, first, second):
        response = client.get(reverse("review", args=[review.pk]))
        assert response.status_code == 200
        pages.setdefault(review.pk, []).append(_decision_form_html(response.content.decode()))
    one, two = pages[first.pk][-1], pages[second.pk][-1]
    assert 'name="value__amount" value="12.5"' in one and "99.75" not in one
    assert 'name="value__amount" value="99.75"' in two and "12.5" not in two
    assert 'value="Taxi &lt;night&gt;"' in one and "Hotel" not in one
    assert 'value="Hotel"' in two and "Taxi" not in two
    assert '<textarea name="value__tags" cols="40" rows="4" id="id_value__tags">\n[&quot;x&quot;]' \
        in two
    assert '<textarea name="value__notes" cols="40" rows="4" id="id_value__notes">\n</textarea>' \
        in two  # no value: empty, not the first review's "a"
    # the kept markup gives the same form as the first rendering (the token aside)
    def without_token(html: str) -> str:
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)

    assert without_token(pages[first.pk][0]) == without_token(pages[first.pk][1])
    assert without_token(pages[second.pk][0]) == without_token(pages[second.pk][1])


def test_a_user_who_may_not_decide_gets_no_form_after_a_reviewer_got_one(make_review,
                                                                          client_as):
    review = _edit_review(make_review, {"amount": 3})
    assert '<form class="decide"' in client_as("reviewer").get(
        reverse("review", args=[review.pk])).content.decode()
    page = client_as("viewer").get(reverse("review", args=[review.pk])).content.decode()
    assert '<form class="decide"' not in page and 'name="value__amount"' not in page
    assert "You can see this review but not decide it" in page


def test_each_user_gets_a_form_with_their_own_working_csrf_token(make_review, make_user):
    review = _edit_review(make_review, {"amount": 3, "title": "t"})
    first = Client(enforce_csrf_checks=True)
    first.force_login(make_user("reviewer"))
    first.get(reverse("review", args=[review.pk]))  # fills the kept markup
    second = Client(enforce_csrf_checks=True)
    second.force_login(make_user("reviewer"))
    page = second.get(reverse("review", args=[review.pk])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                      _decision_form_html(page)).group(1)
    response = second.post(reverse("review-decide", args=[review.pk]),
                           {"action": "approve", "comment": "", "csrfmiddlewaretoken": token})
    assert response.status_code == 303
    review.refresh_from_db()
    assert review.status == "decided"


def test_a_form_that_failed_validation_keeps_what_the_user_typed(make_review, client_as):
    review = _edit_review(make_review, {"amount": 12.5, "title": "Original title"})
    client = client_as("reviewer")
    client.get(reverse("review", args=[review.pk]))  # the kept markup holds the review's values
    response = client.post(reverse("review-decide", args=[review.pk]),
                           {"action": "edit", "value__amount": "-4",
                            "value__title": "My <edit>", "comment": "typed comment"})
    assert response.status_code == 400
    form = _decision_form_html(response.content.decode())
    assert 'name="value__amount" value="-4"' in form and "12.5" not in form
    assert 'value="My &lt;edit&gt;"' in form and "Original title" not in form
    assert ">\ntyped comment</textarea>" in form
    # and the page opened again shows the review's values, not the rejected input
    again = _decision_form_html(client.get(reverse("review", args=[review.pk])).content.decode())
    assert 'name="value__amount" value="12.5"' in again and 'value="Original title"' in again
    assert "My &lt;edit&gt;" not in again and "typed comment" not in again
