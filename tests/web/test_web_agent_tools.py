"""A tool-calling agent (`ToolNode`, `tools_condition`) with a step budget (`RemainingSteps`)
through the app: its managed field is neither asked for nor accepted, the tool's question
becomes a review, and the answer reaches the tool."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_helpers import ApiClient
from django.urls import reverse

from approvals.models import ReviewRequest
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime import runs
from orchestration.runtime.models import Thread
from orchestration.savers import DjangoCheckpointSaver

ASK = {"messages": [{"role": "user", "content": "I want my money back"}]}


@pytest.fixture
def admin(make_user: Any) -> ApiClient:
    return ApiClient(make_user("admin"))


def test_the_api_offers_and_takes_only_the_stored_fields(admin: Any) -> None:
    graphs = admin.get("/graphs")
    assert graphs.status_code == 200, graphs.content
    agent = next(g for g in graphs.json()["items"] if g["name"] == "web_agent")
    assert list(agent["input_schema"]["properties"]) == ["messages", "notes"]
    # a TypedDict lists every key as required; the engine starts these lists empty
    assert agent["input_schema"].get("required", []) == []
    started = admin.post("/threads", {"graph": "web_agent", "input": ASK})
    assert started.status_code == 201, started.content
    given = admin.post("/threads", {"graph": "web_agent",
                                    "input": {**ASK, "remaining_steps": 3}})
    assert given.status_code == 422
    assert "remaining_steps" in json.dumps(given.json()["errors"])


def test_a_tools_question_is_reviewed_and_its_answer_reaches_the_tool(
    start_paused: Any, client_as: Any, django_capture_on_commit_callbacks: Any
) -> None:
    review = start_paused("web_agent", ASK)
    assert review.node == "tools"
    assert review.payload["data"] == {"question": "Refund 40 on A-7?"}
    page = client_as("ops").get(reverse("new-run", args=["web_agent"]))
    assert page.status_code == 200, page.content[:300]
    assert 'name="input__messages"' in page.content.decode()
    assert "remaining_steps" not in page.content.decode()
    client = client_as("reviewer")
    with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("review-decide", args=[review.pk]),
                    {"action": "respond", "text": "yes"})
    review.refresh_from_db()
    assert review.status != ReviewRequest.Status.PENDING
    review.thread.refresh_from_db()
    assert review.thread.status == Thread.Status.DONE
    config = CheckpointConfig(review.thread.thread_id)
    messages = DjangoCheckpointSaver().get_tuple(config).checkpoint.values["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[2]["content"] == "refunded 40" and messages[2]["tool_call_id"] == "call-1"
    assert messages[3]["content"].startswith("refunded 40 (") and "remaining_steps" not in (
        DjangoCheckpointSaver().get_tuple(config).checkpoint.values
    )
