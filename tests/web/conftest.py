"""Factory fixtures for the web tests: users per role, rows, and threads paused by a real run."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from approvals.models import ReviewRequest
from orchestration.runtime import runs
from orchestration.runtime.models import Run, Thread

HERE = Path(__file__).resolve().parent
ROLES = ("viewer", "reviewer", "ops", "admin")
TEST_GRAPHS = {
    "web_review": "web_graphs:graph",
    "web_question": "web_graphs:question_graph",
    "web_subgraph": "web_graphs:subgraph_graph",
    "web_fan_in": "web_graphs:fan_in_graph",
    "web_split": "web_graphs:split_graph",
    "web_failing": "web_graphs:failing_graph",
    "web_agent": "web_graphs:agent_graph",
    "web_partial": "web_graphs:partial_graph",
    "web_note": "web_graphs:note_graph",
}
_seq = itertools.count(1)


@pytest.fixture(autouse=True)
def _web_settings(settings: Any) -> None:
    settings.STEPWISE_GRAPHS = {**settings.STEPWISE_GRAPHS, **TEST_GRAPHS}
    # password hashing is the slowest part of making a user; these tests never check it
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # a review page keeps the "what changed" section it rendered (approvals.review_changes):
    # each test starts without another test's (thread pks come round again on SQLite)
    from approvals import placements, review_changes

    review_changes.forget_all()
    placements.forget()  # the kept tree layouts too (pks and bulk-made ids come round again)


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    # a transactional test flushes every table, the migration's groups included
    from django.contrib.auth.models import Permission

    from approvals.roles import ensure_roles

    if not Group.objects.filter(name="reviewer").exists():
        ensure_roles(Group, Permission)

    def make(role: str | None = "reviewer", username: str | None = None, **fields: Any) -> User:
        user = User.objects.create_user(
            username=username or f"{role or 'nobody'}{next(_seq)}", password="pw", **fields
        )
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def client_as(make_user: Callable[..., User]) -> Callable[..., Client]:
    """A logged-in test client for a new user of `role` (None: a user with no role)."""

    def make(role: str | None = "reviewer", user: User | None = None) -> Client:
        client = Client()
        client.force_login(user or make_user(role))
        return client

    return make


@pytest.fixture
def make_thread(db: None) -> Callable[..., Thread]:
    def make(**fields: Any) -> Thread:
        n = next(_seq)
        defaults = {"thread_id": f"t{n}", "graph_name": "web_review", "title": f"Thread {n}",
                    "status": Thread.Status.WAITING}
        return Thread.objects.create(**{**defaults, **fields})

    return make


@pytest.fixture
def make_run(make_thread: Callable[..., Thread]) -> Callable[..., Run]:
    def make(thread: Thread | None = None, **fields: Any) -> Run:
        defaults = {"kind": Run.Kind.START, "status": Run.Status.WAITING}
        return Run.objects.create(thread=thread or make_thread(), **{**defaults, **fields})

    return make


@pytest.fixture
def make_review(make_run: Callable[..., Run]) -> Callable[..., ReviewRequest]:
    """A review row on a waiting thread (no engine: for list, permission and race tests)."""

    def make(**fields: Any) -> ReviewRequest:
        run = fields.pop("run", None) or make_run(fields.pop("thread", None))
        n = next(_seq)
        defaults = {
            "thread": run.thread, "run": run, "interrupt_id": f"i{n}", "node": "review",
            "title": f"Review {n}",
            "payload": {"kind": "review", "title": f"Review {n}", "data": {"n": n},
                        "actions": ["approve", "reject"]},
        }
        return ReviewRequest.objects.create(**{**defaults, **fields})

    return make


@pytest.fixture
def start_paused(
    make_user: Callable[..., User], django_capture_on_commit_callbacks: Any
) -> Callable[..., ReviewRequest]:
    """Start a real thread of `graph` and run it in-process until it pauses at its review."""

    def start(graph: str = "web_review", input: Any = None, user: User | None = None
              ) -> ReviewRequest:
        from web_graphs import Doc, Question, Ticket

        if input is None:
            input = {
                "web_review": Doc(title="Spring report", amount=12.5),
                "web_subgraph": Ticket(subject="login problem"),
            }.get(graph) or Question(asked="the budget")
        with runs.run_inline(), django_capture_on_commit_callbacks(execute=True):
            run = runs.start_thread(graph, input, user=user or make_user("ops"),
                                    title=f"{graph} thread")
        return ReviewRequest.objects.get(thread=run.thread, status=ReviewRequest.Status.PENDING)

    return start


