"""The review sweeper deletes stored API responses past their replay window and expired
sessions, and keeps what is still in use: a response within its 24 hours of replay, a live
session."""

from __future__ import annotations

import io
from datetime import timedelta

from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone

from approvals.api.models import IdempotencyRecord


def test_sweep_reviews_deletes_old_stored_responses_and_expired_sessions(make_user):
    user = make_user("ops")
    for key, age in (("old-1", 25), ("old-2", 48), ("fresh", 23)):
        IdempotencyRecord.objects.create(user=user, key=key, fingerprint="f", status=201,
                                         body={"key": key})
        IdempotencyRecord.objects.filter(key=key).update(
            created_at=timezone.now() - timedelta(hours=age))
    live, dead = SessionStore(), SessionStore()
    live.create()
    dead.set_expiry(-10)
    dead.create()
    Session.objects.filter(session_key=dead.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=10))

    out = io.StringIO()
    call_command("sweep_reviews", stdout=out)
    assert "deleted 2 stored API response(s) and 1 expired session(s)" in out.getvalue()
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]
