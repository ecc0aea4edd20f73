"""The v1 endpoints (`/api/v1/`, contract: docs/http_api.md). Each one parses its input
(ninja and pydantic), reaches its object through `approvals.access`, calls one action or
selector, and answers with the spec's shapes; every error is problem+json."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Query, Swagger
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from approvals import agent_inbox, selectors
from approvals.access import (
    VIEW,
    access_graphs,
    access_review,
    access_run,
    access_thread,
    require,
)
from approvals.actions import (
    DecisionInput,
    ForkNeedsNode,
    ReviewError,
    check_run_action,
    do_decide,
    do_fork,
    do_run_action,
    state_value_errors,
)
from approvals.api import checkpoint_list, cursors, shapes
from approvals.api.idempotency import run_once
from approvals.api.inputs import (
    INT64_MAX,
    INT64_MIN,
    check_decision_values,
    check_input,
    input_schema,
    int_range_message,
)
from approvals.api.problems import CONTENT_TYPE, ApiProblem, from_problem, problem
from approvals.api.tokens import user_for_token
from approvals.diff import to_jsonable
from approvals.models import Decision, ReviewRequest
from orchestration.runtime import registry, runs
from orchestration.runtime.models import Checkpoint, Run, Thread

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- auth, parsing, errors


class BearerAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        user = user_for_token(token)
        if user is not None:
            request.user = user
        return user


class LimitedParser(Parser):
    """JSON bodies nested at most STEPWISE_API_MAX_DEPTH deep, with no NUL character in any
    string (the size limit is enforced earlier, by the middleware)."""

    def parse_body(self, request: HttpRequest) -> Any:
        try:
            # NaN and Infinity are not JSON (Python's parser takes them): a malformed body
            data = json.loads(request.body, parse_constant=_not_json)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        depth = _depth(data)
        if depth > settings.STEPWISE_API_MAX_DEPTH:
            raise ValueError(
                f"the JSON is nested {depth} levels deep; at most "
                f"{settings.STEPWISE_API_MAX_DEPTH} are accepted"
            )
        # A NUL can only come from a `\u0000` escape (the parser refuses a raw one): valid
        # JSON that no PostgreSQL text or jsonb column stores. Taken, it failed later (a 500
        # for a thread's title; the run, for a review that showed it).
        nul_at = _nul_path(data) if b"\\u0000" in request.body else None
        if nul_at is not None:
            where = (nul_at or "body").replace("\x00", "\\u0000")
            raise ApiProblem(422, f"{where} holds a NUL character (\\u0000), which cannot be "
                             "stored; remove it.", {where: ["NUL characters cannot be stored."]})
        # An integer beyond 64 bits parses, validates and fails the run later (SQLite cannot
        # bind it): refused here, wherever it is. Only a body with such a run of digits is
        # walked.
        big_at = _big_int_path(data) if _LONG_DIGITS.search(request.body) else None
        if big_at is not None:
            where, number = big_at
            raise ApiProblem(422, f"{where or 'body'}: {int_range_message(number)}",
                             {where or "body": [int_range_message(number)]})
        return data


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a finite number")


_LONG_DIGITS = re.compile(rb"\d{19}")


def _big_int_path(value: Any, path: str = "") -> tuple[str, int] | None:
    """(path, number) of the first integer in `value` outside the signed 64-bit range."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (path, value) if not INT64_MIN <= value <= INT64_MAX else None
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for key, child in items:
        found = _big_int_path(child, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _nul_path(value: Any, path: str = "") -> str | None:
    """The path ("input.title", "values.0") of the first string or key in `value` holding a
    NUL character; None if none does (the escape was text: `\\\\u0000`)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for key, child in items:
        at = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return at
        found = _nul_path(child, at)
        if found is not None:
            return found
    return None


def _docs_access(view: Any) -> Any:
    """The OpenAPI document and its page: for a logged-in person or a valid token."""

    @login_not_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        token_user = (
            user_for_token(header[7:].strip()) if header.lower().startswith("bearer ") else None
        )
        if not request.user.is_authenticated and token_user is None:
            if request.path.endswith("/docs"):
                return redirect_to_login(request.get_full_path())
            return problem(401, "Send Authorization: Bearer <token>, or log in.",
                           headers={"WWW-Authenticate": "Bearer"})
        return view(request, *args, **kwargs)

    return wrapped


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Any string of 1 to 200 characters naming this piece of work. The same key from the "
        "same user within 24 hours returns the first response again (with "
        "`Idempotent-Replayed: true`) and creates nothing new, also when the two requests "
        "arrive at once; the same key with another request (other method, path or JSON "
        "body) is a 409. A refused request (any error) keeps nothing: a retry with its key "
        "is done afresh."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
REPLAYED = {
    "description": "`true` when this is the stored first response to the same "
                   "Idempotency-Key; absent otherwise.",
    "schema": {"type": "string", "enum": ["true"]},
}


class StepwiseApi(NinjaAPI):
    """NinjaAPI whose OpenAPI document says what the server sends: errors as
    `application/problem+json` (ninja declares every response `application/json`), and the
    `Idempotency-Key` every POST takes (read by `run_once`, not a declared parameter)."""

    def get_openapi_schema(self, *, path_prefix: str | None = None,
                           path_params: dict[str, Any] | None = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                if not isinstance(operation, dict):
                    continue
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content")
                    if str(status)[:1] in "45" and content and "application/json" in content:
                        content[CONTENT_TYPE] = content.pop("application/json")
                    elif method == "post" and str(status).startswith("2"):
                        response.setdefault("headers", {})["Idempotent-Replayed"] = REPLAYED
                if method == "post":
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
        return schema


api = StepwiseApi(
    title="Stepwise API",
    version="1",
    description="Start threads, read them, answer reviews and act on runs. "
    "Errors are application/problem+json (RFC 9457).",
    urls_namespace="api",
    auth=BearerAuth(),
    parser=LimitedParser(),
    openapi_url="/openapi.json",
    docs_url="/docs",
    docs=Swagger(settings={"persistAuthorization": False}),
    docs_decorator=_docs_access,
)

ERRORS: dict[int, Any] = {
    400: shapes.Problem, 401: shapes.Problem, 403: shapes.Problem, 404: shapes.Problem,
    413: shapes.Problem, 422: shapes.Problem,
}
WRITE_ERRORS: dict[int, Any] = {**ERRORS, 409: shapes.Problem}


@api.exception_handler(ApiProblem)
def _on_problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
    return from_problem(exc)


@api.exception_handler(AuthenticationError)
def _on_auth(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return problem(
        401, "Missing, unknown or revoked token: send Authorization: Bearer <token> "
        "(create one on the API tokens page or with manage.py create_api_token).",
        headers={"WWW-Authenticate": "Bearer"},
    )


@api.exception_handler(HttpError)
def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, ApiProblem):  # the parser's own 422 (a NUL in a string)
        return from_problem(exc.__cause__)
    detail = exc.message
    # django-ninja already names the cause in the message when DEBUG is on ("Cannot parse
    # request body (not valid JSON ...)"): say it once
    if exc.__cause__ is not None and str(exc.__cause__) not in detail:
        detail = f"{detail}: {exc.__cause__}"
    return problem(exc.status_code, detail)


@api.exception_handler(ValidationError)
def _on_validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    if not request.body and any(
        e.get("type") == "missing" and tuple(e.get("loc", ()))[:1] == ("body",)
        and len(e.get("loc", ())) <= 2 for e in exc.errors
    ):
        # no body at all: malformed (the contract's 400), not a 422 on a field "body"
        return problem(400, "The request body is empty; send a JSON object "
                       "(Content-Type: application/json).")
    errors: dict[str, list[str]] = {}
    for e in exc.errors:
        loc = [str(p) for p in e.get("loc", ())]
        # ("body", "payload", "field", ...) / ("query", "field"): keep the field path
        if loc[:1] == ["body"]:
            loc = loc[2:]
        elif loc[:1] in (["query"], ["path"]):
            loc = loc[1:]
        errors.setdefault(".".join(loc) or "body", []).append(str(e.get("msg", "invalid")))
    fields = ", ".join(errors)
    return problem(422, f"The request is not valid ({fields}).", errors)


@api.exception_handler(Http404)
def _on_404(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem(404, str(exc) or "Not found.")


@api.exception_handler(PermissionDenied)
def _on_403(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return problem(403, str(exc) or "You may not do this.")


@api.exception_handler(Exception)
def _on_bug(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("API %s %s failed", request.method, request.path)
    return problem(500, "The server failed on this request; it was logged. Nothing was changed.")


# ---------------------------------------------------------------- bodies


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThreadIn(Body):
    graph: str = Field(max_length=100)
    input: dict[str, Any]
    title: str = Field("", max_length=300)
    thread_id: str | None = Field(
        None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
    )


class ForkIn(Body):
    values: dict[str, Any] | None = None
    reason: str = Field(max_length=2000)
    # which node's output the values stand for, where several nodes wrote the checkpoint in
    # one step and none of them keeps its next steps (a 422 on `as_node` says so)
    as_node: str | None = Field(None, max_length=200)


class DecisionIn(Body):
    action: str = Field(max_length=20)
    comment: str = Field("", max_length=10_000)
    values: Any = None
    text: str = Field("", max_length=10_000)


class ReasonIn(Body):
    reason: str = Field(max_length=2000)


ReviewFilter = Literal[
    "open", "decided", "all", "pending", "claimed", "cancelled", "superseded"
]


def _user(request: HttpRequest) -> Any:
    return request.auth  # type: ignore[attr-defined]


def _require_text(field: str, value: str, why: str) -> str:
    if not value.strip():
        raise ApiProblem(422, why, {field: [why]})
    return value.strip()


def _get(path: str, model: Any, tag: str) -> Any:
    # by_alias: ReviewOut's "schema" field is named schema_ in Python
    return api.get(path, response={200: model, **ERRORS}, tags=[tag], by_alias=True)


# ---------------------------------------------------------------- graphs and threads


@_get("/graphs", shapes.GraphList, "graphs")
def list_graphs(request: HttpRequest) -> dict[str, Any]:
    """The graphs this installation runs, with the JSON Schema of each one's input."""
    access_graphs(_user(request), for_update=False)
    items = []
    for name in registry.graph_names():
        try:
            schema = input_schema(name)
        except registry.GraphRegistryError as exc:
            logger.warning("graph %s cannot be listed: %s", name, exc)
            continue
        items.append({"name": name, "title": str(schema.get("title") or name), "input_schema":
                      schema})
    return {"items": items, "next": None}


@api.post("/threads", response={201: shapes.ThreadCreated, **WRITE_ERRORS}, tags=["threads"],
          by_alias=True)
def create_thread(request: HttpRequest, payload: ThreadIn) -> HttpResponse:
    """Start a thread of `graph` with `input`; its first run is queued for a worker."""
    user = _user(request)
    access_graphs(user, for_update=True)
    if payload.graph not in registry.graph_names():
        known = ", ".join(registry.graph_names())
        raise ApiProblem(422, f"There is no graph {payload.graph!r} (known: {known}).",
                         {"graph": [f"unknown graph (known: {known})"]})
    values = check_input(payload.graph, payload.input)

    def work() -> tuple[int, dict[str, Any]]:
        if payload.thread_id and Thread.objects.filter(thread_id=payload.thread_id).exists():
            raise ApiProblem(409, f"A thread {payload.thread_id!r} already exists.")
        try:
            # run_once's block is the transaction: every error leaves it (a RunError as 409)
            run = runs.start_thread(payload.graph, values, user=user, title=payload.title,
                                    thread_id=payload.thread_id, savepoint=False)
        except runs.RunError as exc:
            raise ApiProblem(409, str(exc)) from None
        # the run as start_thread created it in this transaction: nothing to read back
        return 201, {"thread_id": run.thread.thread_id, "run": shapes.run_dict(run)}

    return run_once(request, user, work)


class Filters(BaseModel):
    """Query parameters: one sent empty (`?status=`) is one not sent, for every parameter
    alike (a form that leaves a filter blank sends it so)."""

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_absent(cls, value: Any, info: ValidationInfo) -> Any:
        if value == "" and info.field_name is not None:
            field = cls.model_fields[info.field_name]
            return field.get_default(call_default_factory=True)
        return value


class ThreadQuery(Filters):
    status: shapes.ThreadStatus | None = None
    graph: str | None = Field(None, max_length=100)
    # as the threads page's search: a case-insensitive part of the id or the title
    q: str | None = Field(None, max_length=300)
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(cursors.DEFAULT_LIMIT, ge=1, le=cursors.MAX_LIMIT)


@_get("/threads", shapes.ThreadList, "threads")
def list_threads(request: HttpRequest, query: Query[ThreadQuery]) -> dict[str, Any]:
    """Threads, newest first; `q` keeps those whose id or title holds it."""
    require(_user(request), VIEW, "see threads")
    qs = selectors.thread_list(
        (query.q or "").strip(), status=query.status or "", graph=query.graph or ""
    ).order_by("-created_at", "-pk")
    rows, nxt = cursors.page(qs, query.cursor, query.limit, "created_at", descending=True)
    return {"items": [shapes.thread_dict(t) for t in rows], "next": nxt}


@_get("/threads/{thread_id}", shapes.ThreadDetailOut, "threads")
def get_thread(request: HttpRequest, thread_id: str) -> dict[str, Any]:
    """A thread with its head state, the nodes it runs next and its open reviews."""
    thread = access_thread(_user(request), thread_id, for_update=False)
    tup = selectors.get_checkpoint(thread, None)
    open_reviews = list(
        ReviewRequest.objects.filter(thread=thread, status__in=ReviewRequest.OPEN)
        .order_by("created_at", "pk").values_list("pk", flat=True)
    )
    return {
        **shapes.thread_dict(thread),
        "values": to_jsonable(selectors.checkpoint_values(tup)),
        "next": list(tup.checkpoint.next) if tup else [],
        "head": tup.config.checkpoint_id if tup else None,
        "open_reviews": open_reviews,
    }


class CheckpointQuery(Filters):
    cursor: str | None = Field(None, max_length=400)
    limit: int | None = Field(None, ge=1, le=checkpoint_list.MAX_LIMIT)


@_get("/threads/{thread_id}/checkpoints", shapes.CheckpointList, "threads")
def list_checkpoints(
    request: HttpRequest, thread_id: str, q: Query[CheckpointQuery]
) -> HttpResponse:
    """The whole checkpoint tree, every branch, oldest first; `?limit=` pages it."""
    thread = access_thread(_user(request), thread_id, for_update=False)
    items, nxt = checkpoint_list.checkpoint_page(thread, q.cursor, q.limit)
    # the items are already what CheckpointList validates and dumps to: rendered as ninja
    # renders a validated result
    return api.create_response(request, {"items": items, "next": nxt}, status=200)


@_get("/threads/{thread_id}/checkpoints/{checkpoint_id}", shapes.CheckpointDetailOut, "threads")
def get_checkpoint(request: HttpRequest, thread_id: str, checkpoint_id: str) -> dict[str, Any]:
    thread = access_thread(_user(request), thread_id, for_update=False)
    row = _checkpoint_row(thread, checkpoint_id)
    tup = selectors.get_checkpoint(thread, checkpoint_id)
    parent = row.parent.checkpoint_id if row.parent else None
    return {**shapes.checkpoint_dict(row, parent),
            "values": to_jsonable(selectors.checkpoint_values(tup))}


def _checkpoint_row(thread: Thread, checkpoint_id: str) -> Checkpoint:
    row = (
        Checkpoint.objects.select_related("parent", "created_by")
        .filter(thread=thread, checkpoint_id=checkpoint_id, checkpoint_ns="").first()
    )
    if row is None:
        raise Http404(f"Thread {thread.thread_id} has no checkpoint {checkpoint_id!r}.")
    return row


def _check_fork_types(thread: Thread, values: dict[str, Any]) -> None:
    """All problems at once, on their fields, as the fork form reports them."""
    errors = state_value_errors(thread, values)
    if errors:
        raise ApiProblem(422, "Some values do not fit the graph's state.", {
            f"values.{name}": [message] for name, message in errors.items()})


@api.post("/threads/{thread_id}/checkpoints/{checkpoint_id}/fork",
          response={201: shapes.RunResult, **WRITE_ERRORS}, tags=["threads"], by_alias=True)
def fork_checkpoint(
    request: HttpRequest, thread_id: str, checkpoint_id: str, payload: ForkIn
) -> HttpResponse:
    """Branch the thread at a checkpoint; `values` replace those fields exactly."""
    user = _user(request)
    thread = access_thread(user, thread_id, for_update=True)
    _checkpoint_row(thread, checkpoint_id)
    reason = _require_text("reason", payload.reason, "A fork needs a reason.")

    _check_fork_types(thread, payload.values or {})

    def work() -> tuple[int, dict[str, Any]]:
        # do_fork applies every value as an Overwrite: the branch holds exactly these values.
        try:
            run = do_fork(user, thread, checkpoint_id, payload.values, reason, payload.as_node)
        except ForkNeedsNode as exc:
            raise ApiProblem(422, str(exc), {"as_node": [str(exc)]}) from None
        except ReviewError as exc:
            text = str(exc)
            if "refuses these values" in text:
                raise ApiProblem(422, text, {"values": [text]}) from None
            raise ApiProblem(409, text) from None
        return 201, {"run": _run_json(run)}

    return run_once(request, user, work)


# ---------------------------------------------------------------- reviews


class ReviewQuery(Filters):
    status: ReviewFilter = "open"
    graph: str | None = Field(None, max_length=100)
    cursor: str | None = Field(None, max_length=200)
    limit: int = Field(cursors.DEFAULT_LIMIT, ge=1, le=cursors.MAX_LIMIT)


@_get("/reviews", shapes.ReviewList, "reviews")
def list_reviews(request: HttpRequest, q: Query[ReviewQuery]) -> dict[str, Any] | HttpResponse:
    """Reviews, oldest first (`status=open` by default: pending or claimed)."""
    user = _user(request)
    require(user, VIEW, "see reviews")
    f = selectors.InboxFilter(graph=q.graph or "", status=q.status)
    if q.status not in ("decided", "all"):
        # no decision to show: plain rows from a fixed statement (the list a reviewer
        # polls; its queryset's compilation and 2 instances per row were most of its CPU)
        after = cursors.decode(q.cursor) if q.cursor else None
        rows, nxt = cursors.page_of(selectors.review_rows(f, after, q.limit + 1), q.limit)
        # the items are already what ReviewList validates and dumps to (see
        # shapes.listed_review_dicts): rendered as ninja renders a validated result
        return api.create_response(
            request, {"items": shapes.listed_review_dicts(rows), "next": nxt}, status=200)
    qs = selectors.review_list(user, f)
    # oldest first, strictly: the keyset cursor needs it (the inbox puts overdue ones first)
    qs = qs.select_related("decision__decided_by").order_by("created_at", "pk")
    rows, nxt = cursors.page(qs, q.cursor, q.limit, "created_at", descending=False)
    return {"items": [shapes.review_dict(r) for r in rows], "next": nxt}


@_get("/reviews/{review_id}", shapes.ReviewOut, "reviews")
def get_review(request: HttpRequest, review_id: int) -> dict[str, Any]:
    review = access_review(_user(request), review_id, for_update=False)
    return shapes.review_dict(review)


@api.post("/reviews/{review_id}/decision", response={200: shapes.DecisionResult, **WRITE_ERRORS},
          tags=["reviews"], by_alias=True)
def decide_review(request: HttpRequest, review_id: int, payload: DecisionIn) -> HttpResponse:
    """Decide an open review; the thread resumes with the answer."""
    user = _user(request)
    review = access_review(user, review_id, for_update=True)
    if payload.action not in review.actions:
        allowed = ", ".join(review.actions)
        raise ApiProblem(422, f"{payload.action!r} is not offered on review #{review.pk} "
                              f"(offered: {allowed}).", {"action": [f"one of: {allowed}"]})
    if payload.action == Decision.Action.REJECT:
        _require_text("comment", payload.comment, "A rejection needs a comment saying why.")
    if payload.action == Decision.Action.RESPOND:
        _require_text("text", payload.text, "A response needs some text.")
    values = check_decision_values(review, payload.action, payload.values)
    answer = None
    if agent_inbox.is_agent_review(review.payload):  # its resume value is its responses
        try:
            answer = agent_inbox.answer_for_action(review.payload, payload.action, values,
                                                   payload.text)
        except agent_inbox.AnswerError as exc:
            field = "values" if payload.action == Decision.Action.EDIT else "action"
            if exc.field is not None:
                field = f"values.{exc.field}"
            raise ApiProblem(422, f"Review #{review.pk}: {exc}", {field: [str(exc)]}) from None
    decision_input = DecisionInput(action=payload.action, comment=payload.comment,
                                   values=values, text=payload.text, answer=answer)

    def work() -> tuple[int, dict[str, Any]]:
        try:
            decision = do_decide(user, review, decision_input)
        except ReviewError as exc:
            raise ApiProblem(409, str(exc)) from None
        # Answered from what this transaction wrote, not read back: do_decide's conditional
        # update decided the review, and the decision and its run are the rows it created or
        # locked (two queries of the twenty-odd a decision makes).
        review.status = ReviewRequest.Status.DECIDED
        review.decision = decision
        run = decision.resumed_run
        return 200, {"review": shapes.review_dict(review), "run": shapes.run_dict(run)}

    # do_decide is all or nothing by itself; the answer is built from what it returned
    return run_once(request, user, work, work_is_atomic=True)


# ---------------------------------------------------------------- runs


@_get("/runs/{run_id}", shapes.RunOut, "runs")
def get_run(request: HttpRequest, run_id: int) -> dict[str, Any]:
    return shapes.run_dict(access_run(_user(request), run_id, for_update=False))


def _run_action(request: HttpRequest, run_id: int, action: str, payload: ReasonIn
                ) -> HttpResponse:
    user = _user(request)
    run = access_run(user, run_id, for_update=True)
    reason = _require_text("reason", payload.reason, "Every run action needs a reason.")

    def work() -> tuple[int, dict[str, Any]]:
        problem_text = check_run_action(run, action)
        if problem_text:
            raise ApiProblem(409, problem_text[0].upper() + problem_text[1:] + ".")
        try:
            changed = do_run_action(user, run, action, reason)
        except ReviewError as exc:
            raise ApiProblem(409, str(exc)) from None
        return 200, {"run": _run_json(changed)}

    return run_once(request, user, work)


@api.post("/runs/{run_id}/resume", response={200: shapes.RunResult, **WRITE_ERRORS},
          tags=["runs"], by_alias=True)
def resume_run(request: HttpRequest, run_id: int, payload: ReasonIn) -> HttpResponse:
    """Re-queue a stalled run."""
    return _run_action(request, run_id, "resume", payload)


@api.post("/runs/{run_id}/retry", response={200: shapes.RunResult, **WRITE_ERRORS},
          tags=["runs"], by_alias=True)
def retry_run(request: HttpRequest, run_id: int, payload: ReasonIn) -> HttpResponse:
    """Queue a new run of a failed run's thread."""
    return _run_action(request, run_id, "retry", payload)


@api.post("/runs/{run_id}/cancel", response={200: shapes.RunResult, **WRITE_ERRORS},
          tags=["runs"], by_alias=True)
def cancel_run(request: HttpRequest, run_id: int, payload: ReasonIn) -> HttpResponse:
    """Stop a queued, running, stalled or waiting run."""
    return _run_action(request, run_id, "cancel", payload)


def _run_json(run: Run) -> dict[str, Any]:
    run = Run.objects.select_related("thread").get(pk=run.pk)
    return shapes.run_dict(run)


def routes() -> Iterator[tuple[str, str]]:
    """(method, path) of every endpoint, for tests that must cover them all."""
    for prefix, router in api._routers:
        for path, view in router.path_operations.items():
            for op in view.operations:
                for method in op.methods:
                    yield method, f"{prefix}{path}"
