"""RFC 9457 problem responses: every API error is `application/problem+json`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from django.http import HttpResponse

CONTENT_TYPE = "application/problem+json"


class ApiProblem(Exception):
    """Raised anywhere under an endpoint: becomes a problem response, and the endpoint's
    transaction is rolled back, so nothing is written."""

    def __init__(
        self, status: int, detail: str, errors: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = {k: list(v) for k, v in (errors or {}).items()}


def invalid(field: str, message: str) -> ApiProblem:
    return ApiProblem(422, f"{field}: {message}", {field: [message]})


def problem_body(
    status: int, detail: str, errors: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if status == 422:
        body["errors"] = {k: list(v) for k, v in (errors or {}).items()}
    return body


def problem(
    status: int,
    detail: str,
    errors: Mapping[str, Sequence[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    response = HttpResponse(
        json.dumps(problem_body(status, detail, errors)), status=status, content_type=CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def from_problem(exc: ApiProblem) -> HttpResponse:
    return problem(exc.status, exc.detail, exc.errors)
