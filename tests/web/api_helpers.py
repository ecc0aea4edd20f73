"""Calling the API with Django's test client and a real bearer token."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from approvals.api.tokens import issue_token


class ApiClient:
    """The test client speaking JSON with `Authorization: Bearer` (no session, no CSRF)."""

    def __init__(self, user: Any | None = None, raw_token: str | None = None) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.token = raw_token or (issue_token(user)[1] if user is not None else None)

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in extra.items()}
        if self.token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {self.token}"
        return headers

    def get(self, path: str, **headers: str) -> Any:
        return self.client.get(f"/api/v1{path}", **self._headers(headers))

    def post(self, path: str, body: Any = None, *, raw: bytes | str | None = None,
             **headers: str) -> Any:
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(f"/api/v1{path}", data, content_type="application/json",
                                **self._headers(headers))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.get(path) if method == "GET" else self.post(path, body)


def answer_then_fork(review: Any, reviewer: ApiClient, ops: ApiClient, capture: Any) -> None:
    """Through the API, in-process: `reviewer` approves `review`, then `ops` forks its thread
    from the review's checkpoint with a new title (a tree with a decision and a branch)."""
    from orchestration.runtime import runs

    thread_id = review.thread.thread_id
    with runs.run_inline(), capture(execute=True):
        assert reviewer.post(f"/reviews/{review.pk}/decision",
                             {"action": "approve"}).status_code == 200
    with runs.run_inline(), capture(execute=True):
        assert ops.post(f"/threads/{thread_id}/checkpoints/{review.checkpoint_id}/fork",
                        {"values": {"title": "Renamed"}, "reason": "try it"}).status_code == 201
