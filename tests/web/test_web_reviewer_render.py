"""A review's payload read from its JSON Schema, Markdown made safe, and the line saying what
a decision sets in motion."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import format_html as django_format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from approvals import schema_render
from approvals.markdown import render_markdown
from approvals.schema_render import PAGE_BUDGET, render_value


def test_money_is_shown_with_the_currency_of_its_sibling_field():
    schema = {"properties": {"amount": {"type": "number", "title": "Amount", "format": "money",
                                        "x-currency-field": "currency"}}}
    html = render_value({"amount": 1250, "currency": "EUR"}, schema)
    assert "<dt>Amount</dt>" in html
    assert "€1,250.00" in html


def test_dates_urls_and_enum_labels_are_shown_for_what_they_are():
    schema = {"properties": {
        "due": {"type": "string", "format": "date", "title": "Due"},
        "receipt": {"type": "string", "format": "uri"},
        "level": {"oneOf": [{"const": "p1", "title": "Urgent"}, {"const": "p2", "title": "Low"}]},
        "kind": {"enum": ["a", "b"], "x-enum-labels": ["Alpha", "Beta"]},
    }}
    html = render_value({"due": "2026-03-01", "receipt": "https://example.com/r/1",
                         "level": "p1", "kind": "b"}, schema)
    assert '<time datetime="2026-03-01">1 Mar 2026</time>' in html
    assert '<a href="https://example.com/r/1" rel="noopener noreferrer nofollow">' in html
    assert "Urgent" in html and ">p1<" not in html
    assert "Beta" in html


def test_a_javascript_url_is_never_a_link():
    html = render_value({"receipt": "javascript:alert(1)"},
                        {"properties": {"receipt": {"type": "string", "format": "uri"}}})
    assert "<a " not in html
    assert "javascript:alert(1)" in html  # shown as text


def test_arrays_of_objects_are_tables_and_nested_objects_sections():
    html = render_value({"lines": [{"item": "Taxi", "cost": 12}, {"item": "Hotel", "cost": 90}],
                         "address": {"city": "Berlin"}}, {})
    assert '<th scope="col">Item</th>' in html and "<td>Hotel</td>" in html
    assert 'class="pl-section"' in html and "Berlin" in html


def test_html_in_values_is_escaped():
    html = render_value({"note": "<script>alert(1)</script>"}, {})
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_markdown_is_rendered_and_sanitized():
    html = render_markdown("**bold** [x](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n"
                           "# Title")
    assert "<strong>bold</strong>" in html
    assert "href=\"javascript" not in html and "<a " not in html
    assert "<img" not in html  # raw HTML is text, never a tag
    assert "<h4>Title</h4>" in html  # never outranks the page's headings


def test_a_huge_payload_is_cut_to_the_page_budget_with_a_note():
    html = render_value({f"k{i}": "x" * 5_000 for i in range(40)}, {})
    assert len(html) < PAGE_BUDGET + 20_000
    assert "Cut to fit the page" in html


def test_review_page_shows_the_payload_by_schema_and_the_raw_json_a_click_away(
        start_paused, client_as):
    review = start_paused()
    page = client_as("reviewer").get(reverse("review", args=[review.pk])).content.decode()
    assert "<dt>Title</dt>" in page  # the schema's title, not the key
    assert "<summary>Raw JSON</summary>" in page
    assert "A decision resumes <code>review</code>; next:" in page
    assert "<code>publish</code>" in page
    assert "side effects" not in page.split('id="next-steps"')[1].split("</p>")[0]


def test_a_node_with_side_effects_after_the_review_is_flagged(make_user, client_as,
                                                               django_capture_on_commit_callbacks):
    from decimal import Decimal

    from approvals.models import ReviewRequest
    from demo.workflows.expense import Expense
    from orchestration.runtime import runs

    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        run = runs.start_thread("expense", Expense(expense_id=9, employee="Bo", vendor="Air",
                                                   amount=Decimal("500")), user=make_user("ops"))
    review = ReviewRequest.objects.get(thread=run.thread)
    page = client_as("reviewer").get(reverse("review", args=[review.pk])).content.decode()
    steps = page.split('id="next-steps"')[1].split("</p>")[0]
    assert "<code>payout</code>" in steps and "side effects" in steps
    assert "the end of the thread" in steps
    assert "€500.00" in page


@pytest.mark.parametrize("args", [
    ("plain",), ("<b>&\"'",), (mark_safe("<i>kept</i>"),), (12,), (1.5,), (None,),
    (gettext_lazy("Yes"),), ("a", mark_safe("<br>"), 3),
], ids=repr)
def test_payload_format_html_is_djangos(args):
    template = "<p>" + "{}|" * len(args) + "</p>"
    ours = schema_render.format_html(template, *args)
    assert ours == django_format_html(template, *args)
    assert hasattr(ours, "__html__")  # marked safe, as Django's


def test_descriptions_are_rendered_per_text():
    schema = {"properties": {"a": {"description": "**one** <script>x</script>"},
                             "b": {"description": "*two*"}}}
    html = schema_render.render_value({"a": 1, "b": 2}, schema)
    again = schema_render.render_value({"a": 1, "b": 2}, schema)
    assert html == again
    assert "<strong>one</strong>" in html and "<em>two</em>" in html
    assert "<script>" not in html
    changed = schema_render.render_value(
        {"a": 1, "b": 2}, {"properties": {"a": {"description": "*three*"}, "b": {}}})
    assert "<em>three</em>" in changed and "one" not in changed and "two" not in changed


def _payload_of(client, review) -> str:
    html = client.get(reverse("review", args=[review.pk])).content.decode()
    return html.split('<div class="payload-view">', 1)[1].split("</div>", 1)[0]


DATED = {"properties": {"due": {"type": "string", "format": "date", "title": "Due"}}}


def test_a_reviews_payload_section_is_kept_and_shown_again_on_its_decided_page(
        make_review, client_as, monkeypatch):
    """The page a decision redirects to shows the payload the open page showed, rendered
    once (approvals.page_helpers keeps it per review)."""
    from approvals import page_helpers

    review = make_review(payload={"data": {"due": "2026-03-01"}, "data_schema": DATED})
    client = client_as("reviewer")
    opened = _payload_of(client, review)
    assert '<time datetime="2026-03-01">1 Mar 2026</time>' in opened
    rendered = []
    monkeypatch.setattr(page_helpers, "render_value",
                        lambda *a: rendered.append(a) or schema_render.render_value(*a))
    review.status = "decided"
    review.save(update_fields=["status"])
    assert _payload_of(client, review) == opened and rendered == []


def test_a_review_asked_again_by_a_later_pause_shows_the_new_payload(make_review, client_as):
    """A pause that asks an open review's interrupt again writes the review's payload anew
    (`actions._update_review`: a new paused checkpoint, the node's new question): the page
    shows the new payload, not the kept section of the first."""
    from approvals.actions import _update_review

    client = client_as("reviewer")
    review = make_review(payload={"data": {"amount": 10}})
    assert "10" in _payload_of(client, review)
    _update_review(review, {"payload": {"data": {"amount": 777}},
                            "checkpoint_id": review.checkpoint_id + "-again"})
    shown = _payload_of(client, review)
    assert "777" in shown and "10" not in shown.replace("777", "")


def test_a_review_number_used_again_shows_the_new_reviews_payload(make_review, client_as):
    """A fresh database (or a rolled-back test) can give a new review an old number: the kept
    section is the old review's only (its interrupt, thread and creation time are the key)."""
    client = client_as("reviewer")
    old = make_review(payload={"data": {"amount": 10}})
    assert "10" in _payload_of(client, old)
    pk = old.pk
    old.delete()
    new = make_review(pk=pk, payload={"data": {"amount": 777}})
    shown = _payload_of(client, new)
    assert "777" in shown and ">10<" not in shown


def test_a_kept_payload_section_follows_the_readers_language(make_review, client_as):
    from django.utils import translation

    from approvals.page_helpers import payload_html

    review = make_review(payload={"data": {"due": "2026-03-01"}, "data_schema": DATED})
    assert "1 Mar 2026" in payload_html(review)
    with translation.override("de"):
        assert "1 Mär 2026" in payload_html(review)
    assert "1 Mar 2026" in payload_html(review)


# _history.html as it was a template (before approvals.page_helpers.history_html built it)
HISTORY_TEMPLATE = """<ol class="history" id="history">
{% for item in history %}
  <li class="h-{{ item.kind }}">
    <time datetime="{{ item.at_iso }}">{{ item.at_short }}</time>
    <span class="what">{% if item.review_pk %}<a href="{{ url('review', item.review_pk) }}">\
{{ item.text }}</a>{% else %}{{ item.text }}{% endif %}</span>
    {% if item.actor %}<span class="who">by {{ item.actor }}</span>{% endif %}
    {% if item.reason %}<span class="reason">“{{ item.reason|truncatechars(160) }}”</span>\
{% endif %}
  </li>
{% else %}
  <li class="empty">Nothing happened yet.</li>
{% endfor %}
</ol>
"""


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Chatham"])
def test_the_history_list_is_the_markup_its_template_printed(zone):
    import datetime as dt

    from django.template import engines
    from django.utils import timezone

    from approvals.page_helpers import history_html
    from approvals.selectors import HistoryItem

    at = dt.datetime(2026, 3, 1, 9, 30, 5, 123456, tzinfo=dt.UTC)
    items = [
        HistoryItem(at=at, kind="review_decided", actor="rita", text="review decided (run 4)"),
        HistoryItem(at=at, kind="decision", actor="o'hara <b>", text='Approve — "A & B" <i>',
                    reason="x" * 200 + "<script>", review_pk=12),
        HistoryItem(at=at, kind="run_queued", actor="", text="run queued", reason="why & 'how'"),
        HistoryItem(at=at, kind="fork", actor="", text="forked"),
    ]
    template = engines["jinja2"].env.from_string(HISTORY_TEMPLATE)
    with timezone.override(zone):
        for shown in (items, items[:1], []):
            assert history_html(shown) == template.render(history=shown)
