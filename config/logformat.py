"""The JSON lines production logs are written in (python-json-logger), one definition for
Django's logging (config/settings.py) and uvicorn's (config/uvicorn-logging.json)."""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter


class JsonLines(JsonFormatter):
    """`time` (ISO 8601, UTC, with its offset), `level`, `logger`, `pid`, `message`, then the
    record's extras (the ids of logcontext), but not uvicorn's `color_message` (the message
    again, with terminal colour codes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(process)d %(message)s")
        kwargs.setdefault("rename_fields",
                          {"levelname": "level", "name": "logger", "process": "pid"})
        kwargs.setdefault("timestamp", "time")
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("color_message", None)
