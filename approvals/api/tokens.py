"""Bearer tokens: issued once, stored as a SHA-256 digest, looked up by digest."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from typing import Any

from django.db import connection
from django.utils import timezone

from approvals import rowread
from approvals.api.models import ApiToken
from approvals.authcache import load_user

PREFIX = "sw_"
# last_used_at is bookkeeping: written at most this often per token, not on every request
TOUCH_EVERY = dt.timedelta(minutes=1)


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(user: Any, name: str = "") -> tuple[ApiToken, str]:
    """A new token for `user`: (the row, the raw token). The raw token is never stored."""
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name.strip()[:100], prefix=raw[:10], digest=digest(raw)
    )
    return token, raw


def user_for_token(raw: str) -> Any | None:
    """The active user owning the live token `raw`, or None."""
    if not raw.startswith(PREFIX) or len(raw) > 200:
        return None
    # the token row on every request (a revoked token is refused at once); the user, with
    # their permissions, through the cache the session's user comes from
    with connection.cursor() as cursor:
        cursor.execute(_token_sql(connection.vendor), [digest(raw)])
        row = cursor.fetchone()
    if row is None:
        return None
    pk, user_id, last_used_at = row
    last_used_at = rowread.field_value(ApiToken, "last_used_at", last_used_at)
    user = load_user(user_id)  # None when the user is inactive
    if user is None:
        return None
    now = timezone.now()
    if last_used_at is None or last_used_at < now - TOUCH_EVERY:
        ApiToken.objects.filter(pk=pk).update(last_used_at=now)
    return user


@functools.cache
def _token_sql(vendor: str) -> str:
    """`ApiToken.objects.filter(digest=..., revoked_at__isnull=True).values_list("pk",
    "user_id", "last_used_at").first()` (the model's newest-first order), fixed once per
    process: its compilation was most of an API request's authentication."""
    table = connection.ops.quote_name(ApiToken._meta.db_table)
    return (f"SELECT id, user_id, last_used_at FROM {table} "  # noqa: S608 - the model's name
            "WHERE digest = %s AND revoked_at IS NULL ORDER BY created_at DESC LIMIT 1")


def revoke_token(user: Any, pk: int) -> bool:
    """Revoke one of `user`'s own tokens; False if it is not theirs or already revoked."""
    return bool(
        ApiToken.objects.filter(pk=pk, user=user, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )
