"""The signed-in user comes from the cache (approvals.authcache), and every change to who they
are or what they may do is refused or granted on the very next request, pages and API alike."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import ApiClient
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext


@pytest.fixture(autouse=True, params=["config.sessions", "config.cached_sessions"])
def _auth_cache_on(settings: Any, request: Any) -> None:
    settings.STEPWISE_AUTH_CACHE = True  # the tests' default cache is a real locmem one
    # with both session engines: the database one, and the cached one served with Redis,
    # which reads the user's cache keys along with the session (config.cached_sessions)
    settings.SESSION_ENGINE = request.param
    cache.clear()


def auth_queries(client: Any, path: str = "/") -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        status = client.get(path).status_code
    # the user row, their permissions and group names (the reviews' claimed_by join aside)
    return status, [q["sql"] for q in ctx.captured_queries if 'FROM "auth_' in q["sql"]]


def test_the_second_request_reads_no_user_permission_or_group_row(client_as):
    client = client_as("reviewer")
    assert auth_queries(client)[0] == 200
    status, queries = auth_queries(client)
    assert status == 200
    assert queries == []


def test_a_permission_taken_from_the_users_group_refuses_the_next_request(client_as):
    client = client_as("reviewer")
    assert client.get("/").status_code == 200
    view = Permission.objects.get(codename="view_reviewrequest")
    Group.objects.get(name="reviewer").permissions.remove(view)
    assert client.get("/").status_code == 403
    Group.objects.get(name="reviewer").permissions.add(view)
    assert client.get("/").status_code == 200


def test_a_permission_taken_from_the_other_side_refuses_the_next_request(client_as):
    client = client_as("reviewer")
    assert client.get("/").status_code == 200
    view = Permission.objects.get(codename="view_reviewrequest")
    view.group_set.remove(Group.objects.get(name="reviewer"))
    assert client.get("/").status_code == 403


def test_a_user_taken_out_of_their_group_is_refused_next_request(client_as, make_user):
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200
    user.groups.remove(Group.objects.get(name="reviewer"))
    assert client.get("/").status_code == 403


def test_a_group_emptied_from_its_side_refuses_its_members_next_request(client_as, make_user):
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200
    Group.objects.get(name="reviewer").user_set.clear()
    assert client.get("/").status_code == 403


def test_a_deleted_group_refuses_its_members_next_request(client_as, make_user):
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200
    Group.objects.get(name="reviewer").delete()
    assert client.get("/").status_code == 403


def test_a_permission_given_to_the_user_counts_on_the_next_request(client_as, make_user):
    user = make_user(None)
    client = client_as(user=user)
    assert client.get("/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_reviewrequest"))
    assert client.get("/").status_code == 200


def test_a_deactivated_user_is_sent_to_the_login_page_next_request(client_as, make_user):
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200
    user.is_active = False
    user.save()
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_a_changed_password_ends_the_other_sessions_next_request(client_as, make_user):
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200
    user.set_password("another secret")
    user.save()
    assert client.get("/").status_code == 302


def test_an_api_token_of_a_deactivated_user_is_refused_next_request(make_user):
    user = make_user("admin")
    api = ApiClient(user)
    assert api.get("/graphs").status_code == 200
    user.is_active = False
    user.save()
    assert api.get("/graphs").status_code == 401


def test_an_api_token_loses_a_revoked_group_permission_next_request(make_user):
    user = make_user("reviewer")
    api = ApiClient(user)
    assert api.get("/reviews").status_code == 200
    Group.objects.get(name="reviewer").permissions.clear()
    assert api.get("/reviews").status_code == 403


def test_the_cached_entry_is_json_data_and_gives_back_the_same_user(client_as, make_user):
    import json

    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200
    entry = cache.get(f"authz:user:{user.pk}")
    assert entry is not None
    json.dumps(entry)  # plain data: the Redis cache stores JSON, never pickle
    assert auth_queries(client)[1] == []  # served from that entry
    from approvals.authcache import load_user

    cached = load_user(user.pk)
    fresh = type(user).objects.get(pk=user.pk)
    assert (cached.pk, cached.username, cached.password, cached.date_joined, cached.is_active) \
        == (fresh.pk, fresh.username, fresh.password, fresh.date_joined, fresh.is_active)
    assert cached.has_perm("approvals.view_reviewrequest")
    assert cached.get_session_auth_hash() == fresh.get_session_auth_hash()
