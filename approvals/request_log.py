"""Log lines written while a request is handled carry the thread, run and review it is about
(taken from the URL: `/reviews/<pk>/`, `/threads/<thread_id>/`, `/ops/runs/<pk>/`, and the
API's routes), so a JSON log can be filtered by id (`orchestration.runtime.logcontext`)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.deprecation import MiddlewareMixin

from orchestration.runtime.logcontext import set_ids

# URL names (or their prefixes) whose `pk` is a review, resp. a run
_REVIEW = ("review", "api-review")
_RUN = ("run", "api-run")


class LogContextMiddleware(MiddlewareMixin):
    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any,
                     view_kwargs: dict[str, Any]) -> None:
        match = request.resolver_match
        name = (match.url_name or "") if match else ""
        ids: dict[str, Any] = {}
        if "thread_id" in view_kwargs:
            ids["thread_id"] = view_kwargs["thread_id"]
        pk = view_kwargs.get("pk") or view_kwargs.get("review_id") or view_kwargs.get("run_id")
        if pk is not None:
            if name.startswith(_REVIEW) or "review_id" in view_kwargs:
                ids["review_id"] = pk
            elif name.startswith(_RUN) or "run_id" in view_kwargs:
                ids["run_id"] = pk
        set_ids(**ids)  # replaces whatever an earlier request left in this context
        return None


class ExpectedDenialFilter(logging.Filter):
    """Drops the traceback from django.request's "Forbidden" record when the 403 came from a
    PermissionDenied (our access checks): the line stays, as a warning with the path, but a
    refused reviewer is routine and a traceback per refusal buried the real errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if getattr(record, "status_code", None) == 403 and isinstance(exc, PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        return True
