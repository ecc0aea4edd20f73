"""A thread started without a title takes one from its input (`runtime.titles`)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestration.runtime.titles import TITLE_MAX, title_from_input


@dataclass
class Claim:
    employee: str
    description: str = ""


class HumanMessage:  # shaped as LangChain's: the app never imports it
    type = "human"

    def __init__(self, content: str) -> None:
        self.content = content


@pytest.mark.parametrize(("value", "title"), [
    ("Summarize the Q3 report\nin two pages", "Summarize the Q3 report"),
    ({"topic": "Tides", "title": "On tides"}, "On tides"),  # title before topic
    ({"title": "  ", "subject": "Kickoff"}, "Kickoff"),     # blank text is skipped
    ({"description": "Two   nights,\tBerlin"}, "Two nights, Berlin"),
    (Claim(employee="Zoe", description="Two nights"), "Two nights"),
    ({"messages": [{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "Where is my order A-1002?"}]},
     "Where is my order A-1002?"),
    ({"messages": [("user", "Refund A-1001")]}, "Refund A-1001"),
    ({"messages": [HumanMessage("Book a room")]}, "Book a room"),
    ({"messages": [{"role": "assistant", "content": "Hello"}]}, ""),
    ({"amount": 12, "label": "k1"}, "k1"),  # any short text, when no field is named so
    ({"amount": "249.00", "employee": "Ann"}, "Ann"),  # an amount sent as text is no title
    ({"customer": "c-42", "message": "Where is my order?"}, "Where is my order?"),
    ({"notes": "two\nlines", "label": " "}, ""),  # long or blank texts are not titles
    ({"amount": 12, "vendor_id": 7}, ""),
    (None, ""), (42, ""), ([], ""),
])
def test_the_title_is_the_first_text_the_input_gives(value, title):
    assert title_from_input(value) == title


def test_a_long_title_is_cut_with_an_ellipsis():
    title = title_from_input({"title": "word " * 40})
    assert len(title) == TITLE_MAX and title.endswith("…")
