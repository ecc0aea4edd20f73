"""The "New run" pages: a form generated from the graph's input schema, for the roles that
may start threads; the new thread opens on its page."""

from __future__ import annotations

import re
from html import unescape

import pytest
import shown
from django.test import Client
from django.urls import reverse

from orchestration.runtime.models import Run, Thread

STARTERS = ("ops", "admin")


@pytest.mark.parametrize("role", ["viewer", "reviewer", "ops", "admin", None])
@pytest.mark.parametrize("name", ["new-run-graphs", "new-run"])
def test_new_run_pages_allow_exactly_the_starters(client_as, role, name):
    args = ["web_review"] if name == "new-run" else []
    response = client_as(role).get(reverse(name, args=args))
    assert response.status_code == (200 if role in STARTERS else 403)


def test_new_run_page_needs_a_login():
    response = Client().get(reverse("new-run", args=["web_review"]))
    assert response.status_code == 302


def test_new_run_heading_reads_well_for_any_graph_name(client_as):
    # QA: "Start a expense thread"
    page = client_as("ops").get(reverse("new-run", args=["web_review"])).content.decode()
    assert "<h1>New web_review thread</h1>" in page


def test_form_has_a_typed_field_per_input_field(client_as):
    page = client_as("ops").get(reverse("new-run", args=["web_review"])).content.decode()
    assert 'name="input__title"' in page
    assert 'name="input__amount"' in page and 'type="number"' in page


def test_starting_a_run_opens_the_new_thread(client_as):
    response = client_as("ops").post(reverse("new-run", args=["web_review"]),
                                     {"title": "From the browser", "input__title": "Memo",
                                      "input__amount": "12.5", "input__notes": "[]",
                                      "input__tags": "{}"})
    thread = Thread.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("thread", args=[thread.thread_id])
    assert thread.title == "From the browser"
    assert Run.objects.get(thread=thread).status == "queued"


def test_input_the_schema_refuses_shows_errors_and_starts_nothing(client_as):
    response = client_as("ops").post(reverse("new-run", args=["web_review"]),
                                     {"input__amount": "lots", "input__notes": '"no"'})
    assert response.status_code == 422
    assert not Thread.objects.exists()


def test_nav_shows_new_run_only_to_starters(client_as):
    assert reverse("new-run-graphs") in client_as("ops").get(reverse("inbox")).content.decode()
    assert reverse("new-run-graphs") not in client_as("reviewer").get(
        reverse("inbox")).content.decode()


def test_a_list_field_without_a_default_starts_empty_and_can_be_left_empty(client_as):
    """Seen in the demo: a `default_factory=list` field was prefilled with "null"."""
    import re

    client = client_as("ops")
    page = client.get(reverse("new-run", args=["web_review"])).content.decode()
    notes = re.search(r'<textarea[^>]*name="input__notes"[^>]*>(.*?)</textarea>', page, re.S)
    assert notes is not None and notes.group(1).strip() == ""
    # submitted exactly as shown (the empty boxes included): the run starts
    response = client.post(reverse("new-run", args=["web_review"]),
                           {"title": "", "input__title": "Memo", "input__amount": "3",
                            "input__notes": "", "input__tags": ""})
    assert response.status_code == 302
    assert Run.objects.get().status == "queued"


def test_the_expense_form_shows_only_its_input_fields(client_as):
    """Seen in a user trial: Decision, Reviewer, Payout Ref and Compliance Override were
    offered as inputs, so the compliance check could be skipped from this form."""
    page = client_as("ops").get(reverse("new-run", args=["expense"])).content.decode()
    for name in ("employee", "vendor", "amount", "description", "currency", "expense_id"):
        assert f'name="input__{name}"' in page
    for name in ("compliance_override", "decision", "reviewer", "comment", "payout_ref",
                 "policy_notes"):
        assert f'name="input__{name}"' not in page
    tags = {m.group(1): m.group(0) for m in re.finditer(r'<input[^>]*name="input__(\w+)"[^>]*>',
                                                          page)}
    assert "required" in tags["vendor"] and "required" not in tags["description"]


def test_the_expense_form_requires_the_claim_and_ignores_smuggled_fields(client_as):
    client = client_as("ops")
    response = client.post(reverse("new-run", args=["expense"]), {"input__employee": "Ann"})
    assert response.status_code == 422
    assert shown.field_errors(response, "input__vendor")
    assert shown.field_errors(response, "input__amount")
    assert not Thread.objects.exists()
    response = client.post(reverse("new-run", args=["expense"]), {
        "input__employee": "Eve", "input__vendor": "Shady Supplies Ltd", "input__amount": "75.00",
        "input__compliance_override": "on", "input__decision": "approved"})
    assert response.status_code == 302
    run = Run.objects.get()
    from orchestration.runtime.inputs import RunInput

    assert set(RunInput.decode(run.input).value) == {"employee", "vendor", "amount"}


def _input_tags(page: str) -> dict[str, str]:
    return {m.group(1): m.group(0)
            for m in re.finditer(r'<(?:input|textarea)[^>]*name="input__(\w+)"[^>]*>', page)}


def test_a_zero_default_is_not_prefilled_and_the_help_says_what_empty_means(client_as):
    """Seen in a trial: "Expense id" started as 0, as if an id had been chosen. A type's empty
    value (0, [], "") is not prefilled; a real default (currency EUR) still is."""
    client = client_as("ops")
    page = client.get(reverse("new-run", args=["expense"])).content.decode()
    tags = _input_tags(page)
    assert 'type="number"' in tags["expense_id"] and "value=" not in tags["expense_id"]
    assert 'value="EUR"' in tags["currency"]
    assert "Optional: 0 if left empty." in page
    # left empty, the graph's default applies, exactly as when it was prefilled
    response = client.post(reverse("new-run", args=["expense"]), {
        "input__employee": "Ann", "input__vendor": "Bistro", "input__amount": "40.00",
        "input__expense_id": "", "input__currency": "EUR"})
    assert response.status_code == 302
    from orchestration.runtime.inputs import RunInput

    assert "expense_id" not in RunInput.decode(Run.objects.get().input).value


def test_required_fields_are_marked_for_eyes_and_for_the_browser(client_as):
    page = client_as("ops").get(reverse("new-run", args=["expense"])).content.decode()
    tags = _input_tags(page)
    for name in ("employee", "vendor", "amount"):
        assert " required" in tags[name]
        label = re.search(rf'<label for="id_input__{name}">(.*?)</label>', page, re.S)
        assert label and 'class="required-mark"' in label.group(1)
    for name in ("description", "currency", "expense_id"):
        assert " required" not in tags[name]
        label = re.search(rf'<label for="id_input__{name}">(.*?)</label>', page, re.S)
        assert label and "required-mark" not in label.group(1)
    assert "are required." in page
    form = re.search(r"<form method=\"post\" class=\"new-run\"[^>]*>", page)
    assert form and "novalidate" not in form.group(0)  # the browser checks before posting


def test_a_refused_submission_keeps_what_was_typed_and_says_why(client_as):
    response = client_as("ops").post(reverse("new-run", args=["expense"]), {
        "title": "Team lunch", "input__employee": "Ann", "input__vendor": "Bistro",
        "input__amount": "forty", "input__expense_id": "7"})
    assert response.status_code == 422
    page = response.content.decode()
    assert "The run was not started" in page
    tags = _input_tags(page)
    assert 'value="forty"' in tags["amount"] and 'value="Bistro"' in tags["vendor"]
    assert 'value="7"' in tags["expense_id"]
    assert 'value="Team lunch"' in page
    error = re.search(r'id="id_input__amount_error"[^>]*>(.*?)</p>', page, re.S)
    assert error and error.group(1) == "Enter a number, such as 40.00."
    assert not Thread.objects.exists()


def test_the_workflow_list_says_what_each_does_takes_and_has_under_way(client_as, make_thread):
    """Seen in a trial: "New run" listed bare graph names. Each now has its module's first
    sentence, its input fields, and links to its unfinished threads by status (done and
    cancelled ones are not counted)."""
    for status in ("waiting", "waiting", "failed", "done", "cancelled"):
        make_thread(graph_name="expense", status=status)
    make_thread(graph_name="publishing", status="running")
    html = client_as("ops").get(reverse("new-run-graphs")).content.decode()
    cards = dict(re.findall(r'<h2><a href="/runs/new/(\w+)/">\1</a></h2>(.*?)</li>', html, re.S))
    assert {"expense", "publishing", "web_review"} <= set(cards)
    expense = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cards["expense"])).strip()
    assert expense.startswith("Expense approval: policy check, small amounts auto-approved,")
    assert "Input: Employee, Vendor, Amount, Description, Currency, Expense Id" in expense
    assert expense.endswith("2 waiting for review · 1 failed")
    assert 'href="/threads/?graph=expense&amp;status=waiting"' in cards["expense"]
    assert "1 running" in cards["publishing"] and "waiting" not in cards["publishing"]


def test_a_graph_that_cannot_be_loaded_is_listed_with_why(client_as, settings):
    settings.STEPWISE_GRAPHS = {**settings.STEPWISE_GRAPHS, "broken": "no.such.module:graph"}
    html = client_as("ops").get(reverse("new-run-graphs")).content.decode()
    assert ("This graph cannot be loaded: STEPWISE_GRAPHS['broken']: importing 'no.such.module'"
            " failed: ModuleNotFoundError") in unescape(html)
    assert 'href="/runs/new/expense/"' in html
