"""A title for a thread started without one (through the API, "New run", or code), taken from
its input, so the lists show what the thread is about instead of a 32-digit id.

The first text found, in this order: the input itself when it is text; a field named like a
title (`_TITLE_FIELDS`, in that order: what the input's own words call it); the first message
a person wrote (`messages`, as chat graphs take their input: `{"role": "user", ...}` dicts,
`("user", text)` pairs, or message objects whose `type` is "human"); else the first field
of a mapping holding a short text (a label, a customer id). Its first line, cut to
`TITLE_MAX`. Nothing found: no title, and the lists show the thread's id as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TITLE_MAX = 80
_TITLE_FIELDS = ("title", "subject", "name", "topic", "question", "task", "prompt", "query",
                 "description", "message", "text")
_PERSON = frozenset({"user", "human"})


def title_from_input(value: Any) -> str:
    """The title of a thread whose first input is `value` ("" when it has no text to use)."""
    return _first_line(_text_of(value))


def _text_of(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    for name in _TITLE_FIELDS:
        text = _field(value, name)
        if isinstance(text, str) and text.strip():
            return text
    messages = _field(value, "messages")
    if isinstance(messages, Sequence) and not isinstance(messages, str | bytes):
        said = next((text for text in map(_said_by_a_person, messages) if text), None)
        if said:
            return said
    if isinstance(value, Mapping):
        return next((text for text in value.values() if _short_words(text)), None)
    return None


def _short_words(text: Any) -> bool:
    """A short one-line text that is not a number (an amount sent as "249.00" names
    nothing)."""
    if not isinstance(text, str) or not text.strip() or len(text) > TITLE_MAX or "\n" in text:
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


def _field(value: Any, name: str) -> Any:
    """`value[name]` of a mapping, else its attribute (a dataclass, a pydantic model)."""
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None) if not isinstance(value, str | bytes) else None


def _said_by_a_person(message: Any) -> str | None:
    if isinstance(message, Sequence) and not isinstance(message, str | bytes):
        role, text = (message[0], message[1]) if len(message) == 2 else (None, None)
    else:
        role = _field(message, "role") or _field(message, "type")
        text = _field(message, "content")
    if role in _PERSON and isinstance(text, str) and text.strip():
        return text
    return None


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    # runs of spaces and tabs in the line shown as one space (a title is one line of a list)
    return first_line("\n".join(" ".join(line.split()) for line in text.splitlines()),
                      TITLE_MAX)


def first_line(text: str, limit: int) -> str:
    """`text`'s first line that is not blank, stripped, cut to `limit` characters with an
    ellipsis (a thread's title here, a review's in `approvals.actions`)."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
