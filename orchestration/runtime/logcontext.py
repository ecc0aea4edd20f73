"""Which thread, run and review a log line is about, without passing them to every call.

`log_context(run_id=..., thread_id=...)` sets context variables for the block (a worker's
run, a request's review); `ContextFilter` copies them onto every log record, where the JSON
formatter (`LOG_FORMAT=json`, python-json-logger) writes them as fields and the text format
(`bin/demo`) appends them. Context variables follow asyncio tasks and `sync_to_async`
threads, so concurrent requests under one ASGI server never see each other's ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["FIELDS", "ContextFilter", "TextFormatter", "current", "log_context", "set_ids"]

FIELDS = ("thread_id", "run_id", "review_id")
_context: ContextVar[dict[str, Any] | None] = ContextVar("stepwise_log_context", default=None)


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    merged = {**current(), **{k: v for k, v in ids.items() if v not in (None, "")}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ids = _context.get() or {}
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, ids.get(name))
        return True


class TextFormatter(logging.Formatter):
    """Human-readable lines (development): the usual text, then the ids that are set."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in FIELDS
                       if getattr(record, name, None) not in (None, ""))
        return f"{text}  [{ids}]" if ids else text


def set_ids(**ids: Any) -> None:
    """Set the ids for the rest of the current context (a request: the middleware sets them
    once per request, replacing the previous request's in a reused thread)."""
    _context.set({k: v for k, v in ids.items() if v not in (None, "")})
