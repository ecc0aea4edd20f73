"""Sessions in Redis written through to the database (`cached_db`, the engine when REDIS_URL is
set), read together with the signed-in user's auth-cache keys in one round trip.

Every signed-in request read its session from Redis (one GET) and then, once the session had
named the user, that user's auth-cache tokens and entry (approvals.authcache, one MGET): two
round trips to Redis, each over a hundred thousand instructions of redis-py (callgrind),
before the view ran.
The user a session key belongs to does not change (Django gives a session a new key at every
login, and a new empty one at logout), so this process remembers it per session key, and the
next request of that session reads the session and that user's auth keys in one MGET.

What was read for the user is only a prefetch: `authcache.load_user` takes it only for the user
the session just read names, only once, and only while this request's
`AuthenticationMiddleware` loads its user (approvals.authcache); the tokens in it were read
before the user's rows, as the auth cache requires. Otherwise (a session's first request in
this process, another user, tokens missing) the user is read as before.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends import cached_db, db
from django.core.cache import DEFAULT_CACHE_ALIAS

from approvals import authcache
from config import sessions
from config.rediscache import log_unreachable, unreachable

logger = logging.getLogger(__name__)

# session key -> the user id (as the session stores it) it was last read signed in as: only a
# hint of which keys to read along with the session. Cleared when it outgrows HINTS_KEPT.
_users_of_sessions: dict[str, str] = {}
HINTS_KEPT = 20_000


class SessionStore(cached_db.SessionStore, sessions.SessionStore):
    """Django's `cached_db` store (with config.sessions' fixed statement on a cache miss) whose
    read also fetches the auth-cache keys of the user this session key was signed in as."""

    def load(self) -> dict[str, Any]:
        self._auth_prefetch: tuple[str, dict[str, Any]] | None = None
        key = self._session_key
        user_id = _users_of_sessions.get(key) if key else None
        try:
            if (user_id is None or not authcache.enabled()
                    or settings.SESSION_CACHE_ALIAS != DEFAULT_CACHE_ALIAS):
                data = super().load()
            else:
                data = self._load_with(user_id)
        except Exception as error:
            if not unreachable(error):
                raise
            # Redis away: the session from the database (the store writes through to it),
            # not cached; a sign-out still fails loudly (its cache delete must happen)
            log_unreachable(logger, "sessions", error)
            data = db.SessionStore.load(self)
        user = data.get(SESSION_KEY) if data else None
        if isinstance(user, str) and self._session_key:
            if len(_users_of_sessions) >= HINTS_KEPT:
                _users_of_sessions.clear()
            _users_of_sessions[self._session_key] = user
        return data

    def _load_with(self, user_id: str) -> dict[str, Any]:
        """`cached_db.SessionStore.load`, with the user's auth keys in the same read."""
        try:
            got = self._cache.get_many([self.cache_key, *authcache.keys_of(user_id)])
        except Exception:  # as Django: an unusable key (or cache) reads as no cached session
            got = {}
        data = got.pop(self.cache_key, None)
        if data is None:  # not cached: from the database, as Django's load
            row = self._get_session_from_db()
            if row is None:
                return {}
            data = self.decode(row.session_data)
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=row.expire_date))
        if data.get(SESSION_KEY) == user_id:
            self._auth_prefetch = (user_id, got)
        return data

    def exists(self, session_key: str) -> bool:
        """Whether a new session key is taken (a sign-in makes one): the cache, then the
        database, as Django's; the database alone while Redis is away."""
        try:
            return super().exists(session_key)
        except Exception as error:
            if not unreachable(error):
                raise
            log_unreachable(logger, "sessions", error)
            return db.SessionStore.exists(self, session_key)

    def take_auth_prefetch(self, user_id: Any) -> dict[str, Any] | None:
        """The auth-cache values read with this session for `user_id`, once; else None."""
        prefetch = getattr(self, "_auth_prefetch", None)
        self._auth_prefetch = None
        if prefetch is None or prefetch[0] != str(user_id):
            return None
        return prefetch[1]
