"""The API's edge: bodies over the size limit get 413 before they are read, and every other
error answer that is not problem+json already becomes one: the plain 404/405 Django and
ninja give for unknown paths and wrong methods, the site's request checks that run after
this middleware (`approvals.middleware`: a NUL in the address, a form in another charset)
and anything else Django answers by itself (a 400 for a suspicious request, its 500 page).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from approvals.api.problems import CONTENT_TYPE, problem

API_PREFIX = "/api/"


class ApiBoundaryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        limit = settings.STEPWISE_API_MAX_BODY_BYTES
        try:
            declared = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            return problem(400, "Content-Length is not a number.")
        if declared > limit:
            return _too_large(limit)
        try:
            body = request.body  # read once here, so the limit holds for chunked bodies too
        except RequestDataTooBig:
            return _too_large(limit)
        if len(body) > limit:
            return _too_large(limit)
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
            CONTENT_TYPE
        ):
            return _plain_to_problem(request, response)
        return response


def _too_large(limit: int) -> HttpResponse:
    return problem(413, f"The request body is larger than {limit} bytes; send less.")


# headers of the answer that still apply to its problem+json form
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


def _plain_to_problem(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    status = response.status_code
    headers = {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}
    if status == 405:
        allowed = response.get("Allow", "")
        detail = f"{request.method} is not allowed on {request.path} (allowed: {allowed})."
    elif status == 404:
        detail = f"There is no API endpoint at {request.path}."
    else:
        detail = _detail_of(response) or _GENERIC.get(status) or f"{_phrase(status)}."
    return problem(status, detail, headers=headers)


_GENERIC = {
    400: "The request is malformed.",
    500: "The server failed on this request; it was logged. Nothing was changed.",
}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _detail_of(response: HttpResponse) -> str:
    """The text a plain-text answer gives (a JSON one's `detail`); '' for HTML pages and
    streams, whose markup says nothing to a client."""
    if getattr(response, "streaming", False):
        return ""
    kind = response.get("Content-Type", "")
    try:
        text = response.content.decode(response.charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return ""
    if kind.startswith("text/plain"):
        return " ".join(text.split())[:1000]
    if kind.startswith("application/json"):
        try:
            detail = json.loads(text).get("detail")
        except (ValueError, AttributeError):
            return ""
        return detail[:1000] if isinstance(detail, str) else ""
    return ""
