"""Reaching reviewers: e-mails to a new review's assignee, opt-out, idle claims released."""

from __future__ import annotations

import datetime as dt
import io

from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from approvals.actions import do_claim
from approvals.api.models import EmailPreference
from approvals.models import ReviewRequest
from approvals.notify import email_review_requested, release_idle_claims
from approvals.selectors import thread_history


def finance_team(make_user):
    group = Group.objects.create(name="finance")
    members = [make_user("reviewer", email=f"f{i}@example.com") for i in range(3)]
    members.append(make_user("reviewer", email=""))  # no address: nobody to write to
    for user in members:
        user.groups.add(group)
    EmailPreference.objects.create(user=members[2], review_requests=False)
    return members


def test_review_for_a_group_emails_its_members_who_did_not_opt_out(make_user, make_review):
    members = finance_team(make_user)
    make_user("reviewer", email="outsider@example.com")
    review = make_review(assignee="finance")
    assert DBTaskResult.objects.filter(
        task_path="approvals.notify.email_review_requested", args_kwargs__args=[review.pk]
    ).exists()
    result = email_review_requested.call(review.pk)
    assert result["sent"] == 2
    assert sorted(m.to[0] for m in mail.outbox) == [members[0].email, members[1].email]
    assert f"/reviews/{review.pk}/" in mail.outbox[0].body


def test_review_for_a_user_emails_that_user(make_user, make_review):
    user = make_user("reviewer", username="rita", email="rita@example.com")
    review = make_review(assignee="rita")
    email_review_requested.call(review.pk)
    assert [m.to for m in mail.outbox] == [[user.email]]


def test_a_review_email_sent_again_after_a_lost_worker_carries_the_same_message_id(
    make_user, make_review,
):
    """A worker killed mid-send is replaced by a task that sends again: each person's copy
    has the Message-ID of the first, so their mailbox keeps one message."""
    members = finance_team(make_user)
    review = make_review(assignee="finance")
    email_review_requested.call(review.pk)
    email_review_requested.call(review.pk)
    ids = [(m.to[0], m.message()["Message-ID"]) for m in mail.outbox]
    assert ids[:2] == ids[2:]
    assert ids[0] == (members[0].email, f"<stepwise.review-requested.{review.pk}."
                                        f"{members[0].pk}@127.0.0.1>")
    assert ids[0][1] != ids[1][1]  # one per person


def test_unassigned_or_closed_reviews_email_nobody(make_user, make_review):
    finance_team(make_user)
    unassigned = make_review()
    decided = make_review(assignee="finance", status="decided")
    email_review_requested.call(unassigned.pk)
    email_review_requested.call(decided.pk)
    assert mail.outbox == []


def test_notifications_page_turns_emails_off(client_as, make_user):
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get(reverse("notifications")).status_code == 200
    client.post(reverse("notifications"), {})  # the checkbox unticked
    assert EmailPreference.objects.get(user=user).review_requests is False


def test_idle_claim_returns_to_the_pool_and_is_in_the_history(make_user, make_review):
    user = make_user("reviewer", username="slow")
    review = make_review()
    do_claim(user, review)
    ReviewRequest.objects.filter(pk=review.pk).update(
        claimed_at=timezone.now() - dt.timedelta(hours=2))
    assert release_idle_claims(dt.timedelta(hours=1)) == [review.pk]
    review.refresh_from_db()
    assert review.status == "pending" and review.claimed_by is None
    history = thread_history(review.thread)
    assert any(item.kind == "review_claim_expired" and "slow" in item.text for item in history)


def test_recent_claims_are_kept(make_user, make_review, settings):
    settings.STEPWISE_CLAIM_IDLE_SECONDS = 3600
    review = make_review()
    do_claim(make_user("reviewer"), review)
    call_command("sweep_reviews", stdout=io.StringIO())
    review.refresh_from_db()
    assert review.status == "claimed"


def test_payload_due_in_sets_the_due_time(start_paused, make_user):
    review = start_paused("web_question")
    assert review.due_at is None  # no "due_in", no graph default
    from approvals.actions import review_due_at

    due = review_due_at({"due_in": 60}, "web_review")
    assert 59 <= (due - timezone.now()).total_seconds() <= 60


def test_graph_default_due_time_applies_to_new_reviews(start_paused, settings):
    settings.STEPWISE_REVIEW_DUE_SECONDS = {"web_review": 3600}
    review = start_paused()
    assert 3590 <= (review.due_at - review.created_at).total_seconds() <= 3600


def test_overdue_reviews_stand_out_and_sort_first_in_the_inbox(client_as, make_review):
    older = make_review()
    overdue = make_review(due_at=timezone.now() - dt.timedelta(minutes=5))
    page = client_as("reviewer").get(reverse("inbox")).content.decode()
    assert page.index(f"#{overdue.pk}<") < page.index(f"#{older.pk}<")
    assert "Overdue" in page


def test_overdue_review_is_escalated_once(make_user, make_review):
    from approvals.api.models import WebhookDelivery, WebhookEndpoint
    from approvals.notify import email_review_overdue, escalate_overdue

    hook = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/", secret="s",
                                          event_types=["review.overdue"])
    ops = make_user("ops", email="ops@example.com")
    review = make_review(due_at=timezone.now() - dt.timedelta(minutes=1))
    make_review(due_at=timezone.now() + dt.timedelta(hours=1))  # not yet due
    assert escalate_overdue() == [review.pk]
    assert escalate_overdue() == []
    assert WebhookDelivery.objects.filter(endpoint=hook, event_type="review.overdue").count() == 1
    email_review_overdue.call(review.pk)
    assert [m.to for m in mail.outbox] == [[ops.email]]
    assert any(i.kind == "review_overdue" for i in thread_history(review.thread))


def test_a_review_nobody_it_is_assigned_to_can_be_emailed_about_queues_no_email_task(
    make_user, make_review,
):
    """No task row (nor a worker's claim of it) for an e-mail with no recipient: the
    assignees have no address, opted out, or are inactive."""
    team = Group.objects.create(name="quiet")
    for user in (make_user("reviewer", email=""), make_user("reviewer", email="o@example.com"),
                 make_user("reviewer", email="gone@example.com", is_active=False)):
        user.groups.add(team)
    EmailPreference.objects.create(
        user=team.user_set.get(email="o@example.com"), review_requests=False)
    make_user("reviewer", username="nomail", email="")
    for assignee in ("quiet", "nomail", "nobody-by-that-name"):
        make_review(assignee=assignee)
    assert not DBTaskResult.objects.filter(
        task_path="approvals.notify.email_review_requested").exists()
    make_user("reviewer", email="new@example.com").groups.add(team)
    review = make_review(assignee="quiet")
    assert DBTaskResult.objects.filter(
        task_path="approvals.notify.email_review_requested", args_kwargs__args=[review.pk]
    ).exists()


def test_anyone_to_email_answers_what_the_orm_query_answers(make_user):
    """`anyone_to_email`'s fixed statement against `_addressees(...).exists()`, the ORM
    query it stands for, over users active or not, with an address or not, opted out, in or
    not (explicitly) and named by their username or their group."""
    from approvals.notify import _addressees, anyone_to_email

    team = Group.objects.create(name="team-x")
    cases = {
        "plain": {}, "inactive": {"is_active": False}, "no-address": {"email": ""},
        "opted-out": {"pref": False}, "opted-in": {"pref": True},
    }
    for name, case in cases.items():
        fields = {"email": f"{name}@example.com", **case}
        pref = fields.pop("pref", None)
        user = make_user(None, username=f"u-{name}", **fields)
        if pref is not None:
            EmailPreference.objects.create(user=user, review_requests=pref)
        alone = Group.objects.create(name=f"g-{name}")
        user.groups.add(alone)
        if name != "plain":
            user.groups.add(team)
    names = ["team-x", "nobody", *(f"u-{n}" for n in cases), *(f"g-{n}" for n in cases)]
    answers = {name: anyone_to_email(name) for name in names}
    assert answers == {name: _addressees(name).exists() for name in names}
    assert answers["u-plain"] and answers["g-opted-in"] and answers["team-x"]
    assert not answers["u-inactive"] and not answers["g-no-address"]
    assert not answers["u-opted-out"] and not answers["nobody"]
