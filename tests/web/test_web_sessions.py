"""Sessions read by the fixed statement of config.sessions (the engine without Redis): a live
session signs its user in, an expired or unknown one does not, as Django's own store."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.sessions import SessionStore


def test_the_engine_without_redis_is_the_fixed_statement_one():
    assert settings.SESSION_ENGINE == "config.sessions"


def test_a_live_session_signs_in_by_one_statement(client_as):
    client = client_as("reviewer")
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/").status_code == 200
    reads = [q["sql"] for q in ctx.captured_queries if "django_session" in q["sql"]]
    assert len(reads) == 1 and reads[0].startswith('SELECT "session_key"'), reads


def test_an_expired_session_signs_nobody_in(client_as):
    client = client_as("reviewer")
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    Session.objects.filter(pk=key).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response["Location"]
    assert SessionStore(key).load() == {}


def test_an_unknown_key_is_an_empty_session_with_no_key(db):
    store = SessionStore("x" * 32)
    assert store.load() == {}
    assert store.session_key is None
