"""`manage.py seed_demo`: demo logins for every role and threads waiting for review."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from orchestration.runtime.models import Run, Thread

pytestmark = pytest.mark.django_db(transaction=True)


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_creates_a_login_per_role_in_its_group() -> None:
    output = seed()
    users = get_user_model().objects.order_by("username")
    assert {u.username: [g.name for g in u.groups.all()] for u in users} == {
        "ada": ["admin"], "otto": ["ops"], "rita": ["reviewer"], "vic": ["viewer"],
    }
    assert all(u.check_password("stepwise-demo") for u in users)
    assert "rita" in output and "stepwise-demo" in output


def test_seed_leaves_reviews_waiting_and_one_failed_run() -> None:
    seed()
    statuses = sorted(Run.objects.values_list("status", flat=True))
    # 2 expenses, 2 articles, 1 support agent tool call, 1 Agent Inbox email
    assert statuses.count(Run.Status.WAITING) == 6
    assert statuses.count(Run.Status.FAILED) == 1
    assert statuses.count(Run.Status.SUCCEEDED) == 2


def test_seed_starts_the_support_agent_with_a_tool_call_to_review() -> None:
    from approvals.models import ReviewRequest
    from orchestration.runtime.models import RunOutput
    from orchestration.savers import DjangoStore

    seed()
    review = ReviewRequest.objects.get(thread__thread_id="demo-support-1")
    assert review.node == "tools|review" and review.title == "Allow issue_refund for c-42?"
    streamed = RunOutput.objects.filter(run__thread__thread_id="demo-support-1")
    assert "".join(d for d in streamed.values_list("data", flat=True) if isinstance(d, str))
    # the second thread of the same customer remembered the first one (the Django store)
    assert DjangoStore().get(("customers", "c-42"), "contact") is not None
    later = RunOutput.objects.filter(run__thread__thread_id="demo-support-2").first()
    assert later is not None and later.data == "Welcome "


def test_seed_includes_a_review_in_agent_inbox_shape() -> None:
    from approvals.models import ReviewRequest

    seed()
    review = ReviewRequest.objects.get(thread__thread_id="demo-email-agent-1")
    assert review.payload["format"] == "agent_inbox"
    assert review.payload["requests"][0]["action_request"]["action"] == "send_email"


def test_seeding_twice_changes_nothing() -> None:
    seed()
    threads, runs = Thread.objects.count(), Run.objects.count()
    seed()
    assert (Thread.objects.count(), Run.objects.count()) == (threads, runs)
    assert get_user_model().objects.count() == 4


def test_seed_on_an_emptied_database_gives_the_roles_their_permissions() -> None:
    """`manage.py flush` removes the groups the migrations made; seeding afterwards must not
    create bare groups that lock the demo users out (found when a test seeded twice)."""
    from django.contrib.auth.models import Group

    Group.objects.all().delete()
    seed()
    rita = get_user_model().objects.get(username="rita")
    assert rita.has_perm("approvals.decide_review")
