"""Sending one notification's e-mails, and sending again later what the mail server could not
take.

A mail server that is down, refuses the connection, times out or answers 4xx ("try again
later") loses no e-mail: the recipients it did not take are handed to a new task of the same
kind, due STEPWISE_EMAIL_BACKOFF_SECONDS x 4^(n-1) after attempt n (30 s, 2 min, 8 min,
32 min by default), up to STEPWISE_EMAIL_MAX_ATTEMPTS attempts. The retry names only those
recipients, so the others do not get a second copy, and it builds their messages anew (a
review decided meanwhile, or a person who opted out, is not mailed), with the same Message-ID.
A permanent refusal (5xx, such as "no such mailbox") is logged and not tried again. When the
last attempt fails too, the task fails with an error naming who was not reached (logged at
ERROR by the worker, visible among the failed tasks).
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.tasks import Task
from django.utils import timezone

__all__ = ["MailNotDelivered", "backoff", "deliver_each", "is_permanent"]

logger = logging.getLogger(__name__)


class MailNotDelivered(RuntimeError):
    """The last attempt at a notification's e-mails failed for some recipients."""


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    return float(settings.STEPWISE_EMAIL_BACKOFF_SECONDS * 4 ** (attempt - 1))


def is_permanent(error: BaseException) -> bool:
    """A refusal the server will repeat (every code it gave is 5xx); connection failures,
    timeouts and 4xx answers pass."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
    elif isinstance(error, smtplib.SMTPResponseException):
        codes = [error.smtp_code]
    else:
        return False
    return bool(codes) and all(code >= 500 for code in codes)


def deliver_each(task: Task[Any, Any], key: int, attempt: int, users: Iterable[Any],
                 send: Callable[[Any], int]) -> dict[str, Any]:
    """`send` one message to each of `users`; those the server could not take yet go to
    `task(key, only=[their ids], attempt=attempt + 1)`, due after the backoff. What it
    returns is the task's result: sent, refused for good, and left for the retry."""
    sent, refused, again = 0, [], []
    last: BaseException | None = None
    for user in users:
        try:
            sent += send(user)
        except OSError as error:  # smtplib's errors are OSErrors, as are refused connections
            if is_permanent(error):
                logger.error("%s(%s): e-mail to user %s refused for good: %s", task.name, key,
                             user.pk, error)
                refused.append(user.pk)
            else:
                again.append(user.pk)
                last = error
    result: dict[str, Any] = {"sent": sent}
    if refused:
        result["refused"] = refused
    if not again:
        return result
    if attempt >= settings.STEPWISE_EMAIL_MAX_ATTEMPTS:
        raise MailNotDelivered(
            f"{task.name}({key}): e-mail not delivered to users {again} after {attempt} "
            "attempts; last error: "
            f"{last!r}. Check the mail server settings (EMAIL_HOST, EMAIL_PORT) and the "
            "server's log."
        )
    due = timezone.now() + dt.timedelta(seconds=backoff(attempt))
    task.using(run_after=due).enqueue(key, only=again, attempt=attempt + 1)
    logger.warning("%s(%s): e-mail to users %s not delivered (%r); attempt %d of %d at %s",
                   task.name, key, again, last, attempt + 1,
                   settings.STEPWISE_EMAIL_MAX_ATTEMPTS, due.isoformat(timespec="seconds"))
    result.update(attempt=attempt, retry=again, retry_at=due.isoformat())
    return result
