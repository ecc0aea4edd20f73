"""What a page shows, read from its HTML: our pages are Jinja2 templates, for which Django's
test client records no `response.context`, so tests assert on what a person sees."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import parse_qsl


def _html(response: Any) -> str:
    return response.content.decode()


def inbox_pks(response: Any) -> list[int]:
    """The reviews listed by the inbox, in order (approvals/inbox_rows.py)."""
    return [
        int(pk)
        for pk in re.findall(r'<a href="/reviews/(\d+)/[^"]*" data-review-link', _html(response))
    ]


def next_page_query(response: Any) -> dict[str, str]:
    """The query of the pager's "Next" link; empty on the last page."""
    found = re.search(r'<a href="\?([^"]*)">Next →</a>', _html(response))
    return dict(parse_qsl(unescape(found.group(1)))) if found else {}


def thread_ids(response: Any) -> list[str]:
    """The threads listed by the thread list, in order."""
    return [
        unescape(t)
        for t in re.findall(r'<tr>\s*<td><a href="/threads/([^"/]+)/">', _html(response))
    ]


def run_pks(response: Any) -> list[int]:
    """The runs listed by the ops console, in order."""
    return [
        int(pk) for pk in re.findall(r'<td><a href="/ops/runs/(\d+)/">run \1</a>', _html(response))
    ]


def tab_counts(response: Any) -> dict[str, int]:
    """The ops console's count per status tab."""
    return {
        status: int(n)
        for status, n in re.findall(
            r'<a href="\?status=(\w+)"[^>]*>[^<]*<span class="count">(\d+)</span>', _html(response)
        )
    }


def status_counts(response: Any) -> dict[str, int]:
    """The inbox's count per review status, and "open" from its status filter."""
    html = _html(response)
    counts = {
        status: int(n)
        for status, n in re.findall(
            r'<li><span class="badge status-(\w+)">[^<]*</span> (\d+)</li>', html
        )
    }
    counts["open"] = int(re.search(r'<option value="open"[^>]*>Open \((\d+)\)', html).group(1))
    return counts


def run_actions(response: Any) -> list[str]:
    """The actions the run page offers (one form each)."""
    return re.findall(r'<form method="post" action="/ops/runs/\d+/(\w+)/"', _html(response))


def field_errors(response: Any, name: str) -> list[str]:
    """The errors a form shows on field `name` (approvals/_field.html)."""
    return [
        unescape(e)
        for e in re.findall(
            rf'<p class="error" id="id_{re.escape(name)}_error" role="alert">(.*?)</p>',
            _html(response),
            re.S,
        )
    ]


def textareas(response: Any) -> dict[str, str]:
    """Each textarea's name and text as a browser sends it back (the first newline, which
    Django's widget puts after the opening tag, is not part of the value)."""
    return {
        name: unescape(text).removeprefix("\n")
        for name, text in re.findall(
            r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', _html(response), re.S
        )
    }


def input_values(response: Any) -> dict[str, str]:
    """Each text input's name and value as a browser sends it back untouched."""
    found = {}
    for tag in re.findall(r"<input\b[^>]*>", _html(response)):
        name = re.search(r'\bname="([^"]*)"', tag)
        kind = re.search(r'\btype="([^"]*)"', tag)
        if name and kind and kind.group(1) in ("text", "number"):
            value = re.search(r'\bvalue="([^"]*)"', tag)
            found[unescape(name.group(1))] = unescape(value.group(1)) if value else ""
    return found


def rerun_nodes(response: Any) -> dict[str, tuple[bool, bool]]:
    """The rerun preview's nodes: name -> (ran after the checkpoint before, has side effects)."""
    return {
        name: ("ran after this checkpoint before" in rest, "side-effects" in rest)
        for name, rest in re.findall(
            r'<li><span class="mono">([^<]+)</span>(.*?)</li>', _html(response), re.S
        )
    }


def hidden_values(html: str, name: str) -> list[str]:
    """The values of the hidden inputs named `name` in a piece of a page (a form)."""
    return re.findall(rf'<input type="hidden" name="{re.escape(name)}" value="([^"]*)">', html)


def decision_form(response: Any, form_class: str = "decide") -> dict[str, str]:
    """What a browser posts from the page's decision form (`form.decide`, or the form of
    `form_class`) as rendered, before a button adds its `action`: inputs with their values
    (checkboxes and radios only when checked), the selected option of each select,
    textareas' text."""
    from html.parser import HTMLParser

    class Form(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.inside = False
            self.fields: dict[str, str] = {}
            self.select: str | None = None
            self.first_option: str | None = None
            self.textarea: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = {k: v or "" for k, v in attrs}
            if tag == "form" and form_class in a.get("class", "").split():
                self.inside = True
            if not self.inside or "name" not in a and tag != "option":
                return
            if tag == "input" and a.get("type") not in ("submit", "button"):
                if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                    return
                self.fields[a["name"]] = a.get("value", "on" if a.get("type") == "checkbox"
                                               else "")
            elif tag == "select":
                self.select, self.first_option = a["name"], None
            elif tag == "option" and self.select is not None:
                if self.first_option is None:
                    self.first_option = a.get("value", "")
                    self.fields.setdefault(self.select, self.first_option)
                if "selected" in a:
                    self.fields[self.select] = a.get("value", "")
            elif tag == "textarea":
                self.textarea = a["name"]
                self.fields[a["name"]] = ""

        def handle_endtag(self, tag: str) -> None:
            if tag == "form":
                self.inside = False
            elif tag == "select":
                self.select = None
            elif tag == "textarea":
                self.textarea = None

        def handle_data(self, data: str) -> None:
            if self.textarea is not None:
                self.fields[self.textarea] += data

    parser = Form()
    parser.feed(_html(response))
    # a browser drops the newline right after <textarea>
    return {k: v.removeprefix("\n") for k, v in parser.fields.items()}
