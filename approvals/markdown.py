"""Markdown that a graph writes into a review (descriptions, Agent Inbox requests) as safe HTML.

markdown-it-py parses CommonMark with raw HTML switched off; nh3 (the Rust `ammonia`
sanitizer) then keeps only the tags and URL schemes listed here, so a payload cannot put a
script, a style or a `javascript:` link on a reviewer's page whatever the parser lets through.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

TAGS = {
    "p", "br", "hr", "strong", "em", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "del",
}
ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
# A description is a few paragraphs; past this it is data, shown cut (the raw JSON has it all).
MAX_MARKDOWN_CHARS = 20_000


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> SafeString:
    """`text` as sanitized HTML. Headings are shifted down three levels (# becomes <h4>) so a
    description never outranks the page's own headings."""
    if not text:
        return mark_safe("")  # noqa: S308 - the empty string
    cut = len(text) > MAX_MARKDOWN_CHARS
    html = _parser().render(text[:MAX_MARKDOWN_CHARS] + ("\n\n…" if cut else ""))
    for level in range(6, 0, -1):
        shifted = min(level + 3, 6)
        html = html.replace(f"<h{level}>", f"<h{shifted}>").replace(
            f"</h{level}>", f"</h{shifted}>"
        )
    clean = nh3.clean(
        html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 - sanitized by nh3 just above
