"""Redis away: pages and the HTTP API read sessions and the signed-in user from the database.

An ops trial stopped Redis under `bin/serve`: every API request, bearer tokens included,
answered 500 (`authcache.load_user` raised the Redis ConnectionError), although everything
the requests needed was in PostgreSQL. The cache here is the production one
(`config.rediscache.RedisCache`) pointed at a port nothing listens on."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import ApiClient

from config import cached_sessions


@pytest.fixture(autouse=True)
def redis_away(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "config.rediscache.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0", "KEY_PREFIX": "away"}}
    settings.STEPWISE_AUTH_CACHE = True
    settings.SESSION_ENGINE = "config.cached_sessions"
    cached_sessions._users_of_sessions.clear()


def test_a_token_request_is_answered_from_the_database(make_user: Any,
                                                       start_paused: Any) -> None:
    start_paused()
    api = ApiClient(make_user("reviewer"))
    response = api.get("/reviews")
    assert response.status_code == 200, response.content[:500]
    assert len(response.json()["items"]) == 1


def test_signing_in_and_pages_work_from_the_database(client: Any, make_user: Any) -> None:
    make_user("reviewer", username="rae")  # password "pw"
    signed_in = client.post("/accounts/login/", {"username": "rae", "password": "pw"})
    assert signed_in.status_code == 302  # its last_login save invalidates the user's entry
    for _ in range(2):  # the first read learns the session's user; the second prefetches it
        response = client.get("/")
        assert response.status_code == 200
        assert b"Inbox" in response.content


def test_a_deactivated_user_is_refused_while_redis_is_away(make_user: Any) -> None:
    user = make_user("reviewer")
    api = ApiClient(user)
    assert api.get("/reviews").status_code == 200
    user.is_active = False
    user.save()
    assert api.get("/reviews").status_code == 401
