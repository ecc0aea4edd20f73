"""API tokens: printed once by the command, shown once on the page, stored only as a hash,
revocable by their owner."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from api_helpers import ApiClient
from django.core.management import CommandError, call_command
from django.urls import reverse

from approvals.api.models import ApiToken
from approvals.api.tokens import issue_token


def test_create_api_token_prints_a_working_token_and_stores_only_its_hash(make_user):
    make_user("viewer", username="vera")
    out = io.StringIO()
    call_command("create_api_token", "vera", "--name", "ci", stdout=out, stderr=io.StringIO())
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(user__username="vera")
    assert token.name == "ci"
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {token.digest, token.prefix} and raw.startswith(token.prefix)
    assert ApiClient(raw_token=raw).get("/graphs").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_create_api_token_for_an_unknown_user_fails_clearly(db):
    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("create_api_token", "ghost")


def test_token_page_shows_a_new_token_once_and_lists_it(client_as, make_user):
    user = make_user("reviewer")
    client = client_as(user=user)
    created = client.post(reverse("api-tokens"), {"name": "billing"})
    raw = re.search(r'id="new-token">([^<]+)<', created.content.decode()).group(1)
    assert ApiClient(raw_token=raw).get("/reviews").status_code == 200
    listing = client.get(reverse("api-tokens")).content.decode()
    assert "billing" in listing and raw not in listing


def test_revoked_token_is_refused(client_as, make_user):
    user = make_user("reviewer")
    api = ApiClient(user)
    token = ApiToken.objects.get(user=user)
    client_as(user=user).post(reverse("api-token-revoke", args=[token.pk]))
    assert api.get("/reviews").status_code == 401


def test_nobody_can_revoke_someone_elses_token(client_as, make_user):
    owner = make_user("reviewer")
    api = ApiClient(owner)
    token = ApiToken.objects.get(user=owner)
    client_as("admin").post(reverse("api-token-revoke", args=[token.pk]))
    assert api.get("/reviews").status_code == 200


def test_token_of_an_inactive_user_is_refused(make_user):
    user = make_user("admin")
    api = ApiClient(user)
    user.is_active = False
    user.save()
    assert api.get("/graphs").status_code == 401


def test_token_page_needs_a_login(client):
    response = client.get(reverse("api-tokens"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_token_without_a_name_can_be_created_on_the_page(client_as, make_user):
    user = make_user("viewer")
    response = client_as(user=user).post(reverse("api-tokens"), {})
    assert response.status_code == 201
    assert ApiToken.objects.filter(user=user).count() == 1


def test_token_lookup_reads_what_the_orm_query_reads(make_user):
    """user_for_token's fixed statement finds the row (and its last use, as the ORM converts
    it) that the queryset it replaces finds, and refuses what it refuses."""
    import datetime as dt

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from approvals.api.tokens import digest, user_for_token

    user = make_user("reviewer")
    token, raw = issue_token(user)
    used = timezone.now() - dt.timedelta(seconds=10)  # recent: not touched again
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=used)
    expected = (ApiToken.objects.filter(digest=digest(raw), revoked_at__isnull=True)
                .values_list("pk", "user_id", "last_used_at").first())
    assert expected == (token.pk, user.pk, used)
    with CaptureQueriesContext(connection) as ctx:
        assert user_for_token(raw).pk == user.pk
    # the read only: a last use ten seconds ago, read back as the aware time it is, is recent
    assert len([q for q in ctx.captured_queries if "apitoken" in q["sql"]]) == 1
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=used - dt.timedelta(minutes=5))
    user_for_token(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > used
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert user_for_token(raw) is None
    assert user_for_token("sw_not-a-token") is None
