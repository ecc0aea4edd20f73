"""The API's edge: bodies over the size limit get 413 before they are read, and the plain
404/405 answers Django and ninja give for unknown paths and wrong methods become
problem+json like every other API error."""

from __future__ import annotations

from collections.abc import Callable

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
        if response.status_code in (404, 405) and CONTENT_TYPE not in response.get(
            "Content-Type", ""
        ) and "application/json" not in response.get("Content-Type", ""):
            return _plain_to_problem(request, response)
        return response


def _too_large(limit: int) -> HttpResponse:
    return problem(413, f"The request body is larger than {limit} bytes; send less.")


def _plain_to_problem(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if response.status_code == 405:
        allowed = response.get("Allow", "")
        converted = problem(
            405, f"{request.method} is not allowed on {request.path} (allowed: {allowed}).",
            headers={"Allow": allowed},
        )
        return converted
    return problem(404, f"There is no API endpoint at {request.path}.")
