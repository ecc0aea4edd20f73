"""What the API returns: the spec's shapes as pydantic models (for the OpenAPI document)
and the functions turning rows into them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from django.core.serializers.json import DjangoJSONEncoder
from pydantic import BaseModel, ConfigDict, Field

from approvals.diff import to_jsonable
from approvals.models import Decision, ReviewRequest
from orchestration.runtime.models import Checkpoint, Run, Thread

if TYPE_CHECKING:
    from approvals.selectors import ReviewRow

ThreadStatus = Literal["new", "running", "waiting", "done", "failed", "cancelled", "stalled"]
RunStatus = Literal[
    "queued", "running", "waiting", "succeeded", "failed", "cancelled", "stalled", "answered"
]
ReviewStatus = Literal["pending", "claimed", "decided", "cancelled", "superseded"]


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: dict[str, list[str]] | None = Field(default=None, description="On 422 only")


class ThreadOut(BaseModel):
    thread_id: str
    graph: str
    title: str
    status: ThreadStatus
    created_at: dt.datetime
    updated_at: dt.datetime


class ThreadDetailOut(ThreadOut):
    values: dict[str, Any]
    next: list[str]
    head: str | None
    open_reviews: list[int]


class RunOut(BaseModel):
    id: int
    thread_id: str
    kind: str
    status: RunStatus
    created_at: dt.datetime
    error: str


class CheckpointOut(BaseModel):
    id: str
    parent_id: str | None
    step: int
    source: str
    next: list[str]
    created_at: dt.datetime
    actor: str


class CheckpointDetailOut(CheckpointOut):
    values: dict[str, Any]


class DecisionOut(BaseModel):
    action: str
    comment: str
    values: dict[str, Any]
    text: str
    by: str
    at: dt.datetime


class ReviewOut(BaseModel):
    # "schema" would shadow BaseModel.schema: the field is schema_, spelled "schema" on the wire
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    thread_id: str
    status: ReviewStatus
    title: str
    description: str
    data: Any
    actions: list[str]
    schema_: dict[str, Any] | None = Field(alias="schema")
    assignee: str
    created_at: dt.datetime
    # null: no due time (neither the payload's "due_in" nor STEPWISE_REVIEW_DUE_SECONDS)
    due_at: dt.datetime | None = None
    decision: DecisionOut | None


class GraphOut(BaseModel):
    name: str
    title: str
    input_schema: dict[str, Any]


class GraphList(BaseModel):
    items: list[GraphOut]
    next: str | None = None


class ThreadList(BaseModel):
    items: list[ThreadOut]
    next: str | None


class ReviewList(BaseModel):
    items: list[ReviewOut]
    next: str | None


class CheckpointList(BaseModel):
    items: list[CheckpointOut]
    next: str | None = None


class ThreadCreated(BaseModel):
    thread_id: str
    run: RunOut


class RunResult(BaseModel):
    run: RunOut


class DecisionResult(BaseModel):
    review: ReviewOut
    run: RunOut


# ---------------------------------------------------------------- rows -> dicts


def thread_dict(thread: Thread) -> dict[str, Any]:
    return {
        "thread_id": thread.thread_id,
        "graph": thread.graph_name,
        "title": thread.title,
        "status": thread.status,
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
    }


def run_dict(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "thread_id": run.thread.thread_id,
        "kind": run.kind,
        "status": run.status,
        "created_at": run.created_at,
        "error": run.error,
    }


def review_dict(review: ReviewRequest) -> dict[str, Any]:
    payload = review.payload if isinstance(review.payload, dict) else {}
    decision = getattr(review, "decision", None) if review.status == "decided" else None
    return {
        "id": review.pk,
        "thread_id": review.thread.thread_id,
        "status": review.status,
        "title": review.title,
        "description": str(payload.get("description") or ""),
        "data": to_jsonable(review.data),
        "actions": review.actions,
        "schema": review.schema,
        "assignee": review.assignee,
        "created_at": review.created_at,
        "due_at": review.due_at,
        "decision": decision_dict(decision) if decision is not None else None,
    }


def listed_review_dicts(rows: Iterable[ReviewRow]) -> list[dict[str, Any]]:
    """`review_dict` of each undecided review row read from the database (selectors.review_rows),
    already in the form `ReviewOut` validates and dumps it to, so the list's response can go
    to the renderer without a pydantic validation per row (a third of the list's CPU):
    - the payload was decoded from JSON text, so `to_jsonable` of its data is the data itself
      (str keys, JSON scalars, dicts and lists), as is its schema;
    - `actions` are strings (the model's property keeps only known actions), id an int,
      thread id, title and assignee text columns, status one of the statuses the statement
      selects (all in `ReviewStatus`), the times formatted as the renderer formats them;
    - no decision: the statement reads no decided review.
    Keys in `ReviewOut`'s field order (its dump's order). tests/web/test_api_review_list_json.py
    compares whole responses with the validated path's."""
    return [{
        "id": r.pk,
        "thread_id": r.thread.thread_id,
        "status": r.status,
        "title": r.title,
        "description": str(r.payload.get("description") or ""),
        "data": r.data,
        "actions": r.actions,
        "schema": r.schema,
        "assignee": r.assignee,
        "created_at": json_time(r.created_at),
        "due_at": None if r.due_at is None else json_time(r.due_at),
        "decision": None,
    } for r in rows]


# A datetime as ninja's JSON encoder writes it (it hands datetimes to DjangoJSONEncoder's):
# formatted here, the renderer's C encoder calls back into Python for none of the items'
# values (the callback with ninja's type checks before it was 2/5 of the rendering).
json_time = DjangoJSONEncoder().default


def decision_dict(decision: Decision) -> dict[str, Any]:
    return {
        "action": decision.action,
        "comment": decision.comment,
        "values": dict(decision.values or {}),
        "text": decision.text,
        "by": decision.decided_by.get_username() if decision.decided_by else "",
        "at": decision.decided_at,
    }


def checkpoint_dict(row: Checkpoint, parent_id: str | None) -> dict[str, Any]:
    extra = row.extra if isinstance(row.extra, dict) else {}
    username = row.created_by.get_username() if row.created_by else None
    return checkpoint_item(row.checkpoint_id, parent_id, row.step, row.source, row.next,
                           row.created_at, username, extra.get("user"), extra.get("reviewer"))


def checkpoint_item(
    checkpoint_id: str, parent_id: str | None, step: int, source: str, next_: Any,
    created_at: dt.datetime, username: str | None, extra_user: Any, extra_reviewer: Any,
) -> dict[str, Any]:
    """A Checkpoint of the API from its columns: who made it is the user who wrote it, else
    the one its metadata names (a decision's reviewer)."""
    return {
        "id": checkpoint_id,
        "parent_id": parent_id,
        "step": step,
        "source": source,
        "next": [str(n) for n in (next_ or [])],
        "created_at": created_at,
        "actor": username if username else str(extra_user or extra_reviewer or ""),
    }
