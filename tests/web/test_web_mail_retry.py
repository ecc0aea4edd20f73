"""E-mails a mail server could not take are sent again later, to those it did not take
(approvals.mailretry), against a real SMTP server (aiosmtpd) or none at all."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth.models import Group
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from approvals.mailretry import MailNotDelivered
from approvals.notify import email_review_requested


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smtp_at(port: int) -> Any:
    return override_settings(MAILERS={"default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {"host": "127.0.0.1", "port": port, "use_tls": False, "timeout": 5},
    }})


class Mailbox:
    """An SMTP server's handler: answers each recipient as `answers` says (default 250) and
    keeps the messages it accepted."""

    def __init__(self, answers: dict[str, str] | None = None) -> None:
        self.answers = answers or {}
        self.received: list[tuple[list[str], Any]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
        answer = self.answers.get(address, "250 OK")
        if answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return answer

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        self.received.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def team(make_user: Any, n: int = 3) -> list[Any]:
    group = Group.objects.create(name="finance")
    members = [make_user("reviewer", email=f"f{i}@example.com") for i in range(n)]
    for user in members:
        user.groups.add(group)
    return members


def retry_rows() -> list[DBTaskResult]:
    return [row for row in DBTaskResult.objects.filter(
        task_path="approvals.notify.email_review_requested").order_by("enqueued_at")
        if row.args_kwargs.get("kwargs")]


def run_row(row: DBTaskResult) -> dict[str, Any]:
    return email_review_requested.call(*row.args_kwargs["args"], **row.args_kwargs["kwargs"])


def test_mail_server_down_then_back_every_recipient_gets_one_copy_later(
    make_user, make_review, smtp_server,
):
    members = team(make_user, 2)
    review = make_review(assignee="finance")
    before = timezone.now()
    with smtp_at(free_port()):  # nothing listens there: connection refused
        result = email_review_requested.call(review.pk)
    assert result["sent"] == 0
    assert result["retry"] == [members[0].pk, members[1].pk]
    [row] = retry_rows()
    assert row.args_kwargs == {"args": [review.pk],
                               "kwargs": {"only": [members[0].pk, members[1].pk], "attempt": 2}}
    assert before + dt.timedelta(seconds=29) < row.run_after < timezone.now() + dt.timedelta(
        seconds=31)

    box, port = smtp_server
    with smtp_at(port):
        again = run_row(row)
    assert again["sent"] == 2 and "retry" not in again
    assert sorted(to for to, _ in box.received) == [[members[0].email], [members[1].email]]
    assert {msg["Message-ID"] for _, msg in box.received} == {
        f"<stepwise.review-requested.{review.pk}.{m.pk}@127.0.0.1>" for m in members}
    assert len(retry_rows()) == 1  # nothing more queued


def test_only_the_recipients_not_taken_are_tried_again_and_a_5xx_is_not(
    make_user, make_review, smtp_server,
):
    members = team(make_user, 3)
    box, port = smtp_server
    box.answers = {members[0].email: "451 4.3.0 try again later",
                   members[1].email: "550 5.1.1 no such mailbox"}
    review = make_review(assignee="finance")
    with smtp_at(port):
        result = email_review_requested.call(review.pk)
    assert result == {"review": review.pk, "sent": 1, "attempt": 1, "refused": [members[1].pk],
                      "retry": [members[0].pk], "retry_at": result["retry_at"]}
    assert [to for to, _ in box.received] == [[members[2].email]]

    box.answers = {}
    [row] = retry_rows()
    with smtp_at(port):
        assert run_row(row)["sent"] == 1
    assert [to for to, _ in box.received] == [[members[2].email], [members[0].email]]


def test_a_retry_for_a_review_decided_meanwhile_sends_nothing(make_user, make_review):
    team(make_user, 1)
    review = make_review(assignee="finance")
    with smtp_at(free_port()):
        email_review_requested.call(review.pk)
    review.status = "decided"
    review.save(update_fields=["status"])
    [row] = retry_rows()
    assert run_row(row)["sent"] == 0
    assert mail.outbox == []


@override_settings(STEPWISE_EMAIL_MAX_ATTEMPTS=3)
def test_the_last_attempt_fails_the_task_naming_who_was_not_reached(make_user, make_review):
    members = team(make_user, 1)
    review = make_review(assignee="finance")
    with smtp_at(free_port()), pytest.raises(MailNotDelivered) as failed:
        email_review_requested.call(review.pk, only=[members[0].pk], attempt=3)
    assert f"email_review_requested({review.pk}): e-mail not delivered to users " \
           f"[{members[0].pk}] after 3 attempts" in str(failed.value)
    assert "EMAIL_HOST" in str(failed.value)
    assert retry_rows() == []
