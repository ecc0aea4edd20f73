"""With Redis, a signed-in request reads its session and its user's auth-cache keys in one
round trip (config.cached_sessions + approvals.authcache.AuthenticationMiddleware); what was read
along with the session is only ever used for the user that session names."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache

from approvals import authcache
from config import cached_sessions


@pytest.fixture(autouse=True)
def _cached_sessions(settings: Any) -> None:
    settings.STEPWISE_AUTH_CACHE = True  # the tests' default cache is a real locmem one
    settings.SESSION_ENGINE = "config.cached_sessions"
    cache.clear()
    cached_sessions._users_of_sessions.clear()


@pytest.fixture
def cache_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The keys of every read from the (real, locmem) cache, one list per round trip."""
    reads: list[list[str]] = []
    get, get_many = LocMemCache.get, LocMemCache.get_many

    inside_many: list[bool] = []

    def counted_get(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        if not inside_many:  # locmem's get_many calls get for each key: one read, not many
            reads.append([key])
        return get(self, key, *args, **kwargs)

    def counted_get_many(self: Any, keys: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(list(keys))
        inside_many.append(True)
        try:
            return get_many(self, keys, *args, **kwargs)
        finally:
            inside_many.pop()

    monkeypatch.setattr(LocMemCache, "get", counted_get)
    monkeypatch.setattr(LocMemCache, "get_many", counted_get_many)
    return reads


def session_key(client: Any) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_a_signed_in_page_reads_the_session_and_the_user_in_one_round_trip(
        client_as, make_user, cache_reads):
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200  # learns whose session it is; fills the caches
    cache_reads.clear()
    assert client.get("/").status_code == 200
    key = session_key(client)
    assert cache_reads == [[f"{KEY_PREFIX}{key}",
                            *authcache.keys_of(user.pk)]], cache_reads


def test_what_was_read_for_another_user_is_never_used(client_as, make_user, cache_reads):
    """A session whose remembered user is wrong (it cannot happen: a key is never reused for
    another user; here forced) loads the user the session names, read on its own."""
    reviewer, nobody = make_user("reviewer"), make_user(None)
    reviewer_client, nobody_client = client_as(user=reviewer), client_as(user=nobody)
    assert reviewer_client.get("/").status_code == 200
    assert nobody_client.get("/").status_code == 403
    cached_sessions._users_of_sessions[session_key(nobody_client)] = str(reviewer.pk)
    cache_reads.clear()
    assert nobody_client.get("/").status_code == 403  # still the user without the permission
    assert [f"authz:user:{nobody.pk}" in keys for keys in cache_reads] == [False, True]


def test_a_revoked_permission_counts_on_the_next_request(client_as, make_user):
    from django.contrib.auth.models import Group, Permission

    client = client_as(user=make_user("reviewer"))
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 200  # served from the one read
    view = Permission.objects.get(codename="view_reviewrequest")
    Group.objects.get(name="reviewer").permissions.remove(view)
    assert client.get("/").status_code == 403


def test_a_logged_out_session_key_signs_nobody_in(client_as, make_user):
    client = client_as(user=make_user("reviewer"))
    assert client.get("/").status_code == 200
    old = session_key(client)
    assert client.post("/accounts/logout/").status_code == 302
    client.cookies[settings.SESSION_COOKIE_NAME] = old  # the old cookie, replayed
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_the_prefetch_is_used_once_and_only_while_the_user_is_loaded(client_as, make_user):
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200
    store = cached_sessions.SessionStore(session_key(client))
    assert store.load()[authcache.auth.SESSION_KEY] == str(user.pk)
    assert store.take_auth_prefetch(user.pk + 1) is None  # another user: not theirs
    store = cached_sessions.SessionStore(session_key(client))
    store.load()
    assert set(store.take_auth_prefetch(user.pk)) == set(authcache.keys_of(user.pk))
    assert store.take_auth_prefetch(user.pk) is None  # taken once
    assert authcache._loading_for.get() is None  # offered only inside a request's user load


def test_a_session_not_in_the_cache_is_read_from_the_database(client_as, make_user):
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200
    cache.delete(f"{KEY_PREFIX}{session_key(client)}")
    assert client.get("/").status_code == 200
    assert cache.get(f"{KEY_PREFIX}{session_key(client)}") is not None
