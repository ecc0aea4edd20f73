"""The signed-in user's row, permissions and group names, cached between requests.

Without it every request read the user row, the user's own permissions, their groups'
permissions and their group names: four queries (and their ORM compilation) before the view
ran, a fifth of a page's server CPU. With `STEPWISE_AUTH_CACHE` on (the default when Redis is
the cache, which every server process shares) the user object, with Django's permission caches
and our group names already filled in, comes from the cache in one round trip.

A revoked permission must not outlive its change, so an entry is valid only under the
generation tokens it was built under: a per-user token, replaced when the user row, their
groups or their own permissions change, and a global one, replaced when any group, group
permission or permission changes. The tokens are read (one `get_many`, together with the entry)
before the database is, and replaced both at the change and again after its transaction
commits: a request that read the old rows before the commit either stored its entry under a
token that is gone by the time anyone reads it, or read the new rows. Changes that bypass model
signals (`QuerySet.update()` on users) are seen within `TTL` seconds.
"""

from __future__ import annotations

import logging
import secrets
from contextvars import ContextVar
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth import middleware as auth_middleware
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from approvals.access import group_names
from approvals.authrows import load_permissions, read_user
from config.rediscache import log_unreachable, unreachable

logger = logging.getLogger(__name__)

GLOBAL = "authz:gen"
TTL = 60  # seconds an entry lives at most (bounds changes made without signals)


def enabled() -> bool:
    return bool(getattr(settings, "STEPWISE_AUTH_CACHE", False))


def _user_gen(user_id: Any) -> str:
    return f"authz:gen:{user_id}"


def _entry(user_id: Any) -> str:
    return f"authz:user:{user_id}"


def keys_of(user_id: Any) -> list[str]:
    """The cache keys `load_user(user_id)` reads: the global token, the user's, their entry."""
    return [GLOBAL, _user_gen(user_id), _entry(user_id)]


# The session of the request whose user AuthenticationMiddleware is loading, while it does:
# its store may have read this user's keys along with the session (config.cached_sessions).
_loading_for: ContextVar[Any] = ContextVar("stepwise_auth_loading_for", default=None)


def _tokens(user_id: Any) -> tuple[str, str, Any]:
    """(global token, user token, entry or None); missing tokens are created first."""
    keys = keys_of(user_id)
    session = _loading_for.get()
    take = getattr(session, "take_auth_prefetch", None)
    got = take(user_id) if take is not None else None
    if got is None:
        got = cache.get_many(keys)
    if GLOBAL not in got or keys[1] not in got:
        # evicted or never set: a fresh token (no entry can carry it yet); add() keeps one
        # another process set in the meantime
        for key in keys[:2]:
            if key not in got:
                cache.add(key, secrets.token_hex(8), timeout=None)
        got = cache.get_many(keys)
    return got.get(GLOBAL, ""), got.get(keys[1], ""), got.get(keys[2])


def load_user(user_id: Any) -> Any | None:
    """The active user `user_id`, or None; with permissions and group names loaded when it
    comes through the cache (without it they are read at the first check, one statement)."""
    backend = CachedModelBackend()
    if not enabled():
        return _active(backend, read_user(user_id))
    try:
        gen, user_gen, entry = _tokens(user_id)
    except Exception as error:
        if not unreachable(error):
            raise
        log_unreachable(logger, "signed-in users", error)
        return _active(backend, read_user(user_id))  # as without the cache, nothing stored
    if entry is not None and entry[0] == gen and entry[1] == user_gen:
        user = _thaw(entry[2])
        return user if user.is_active else None
    user = _active(backend, read_user(user_id))
    if user is None:
        return None
    backend.get_all_permissions(user)  # fills Django's _user/_group/_perm_cache on it
    group_names(user)
    if gen and user_gen:
        try:
            cache.set(_entry(user_id), [gen, user_gen, _freeze(user)], timeout=TTL)
        except Exception as error:  # gone since the tokens were read: the user is good
            if not unreachable(error):
                raise
            log_unreachable(logger, "signed-in users", error)
    return user


# The entry is plain JSON data (the cache serializes with JSON, never pickle: a value read
# back from Redis can only ever be data): the row's field values as strings where they are
# not JSON types, and the permission and group-name caches as sorted lists.
_PERM_CACHES = ("_user_perm_cache", "_group_perm_cache", "_perm_cache")


def _freeze(user: Any) -> dict[str, Any]:
    fields = {}
    for field in user._meta.concrete_fields:
        value = field.value_from_object(user)
        fields[field.attname] = (
            value
            if value is None or isinstance(value, bool | int | float | str)
            else field.value_to_string(user)
        )
    caches = {name: sorted(getattr(user, name)) for name in _PERM_CACHES}
    return {"fields": fields, "perms": caches, "groups": sorted(group_names(user))}


def _thaw(data: dict[str, Any]) -> Any:
    model = get_user_model()
    user = model(
        **{
            field.attname: field.to_python(data["fields"][field.attname])
            for field in model._meta.concrete_fields
            if field.attname in data["fields"]
        }
    )
    user._state.adding = False
    user._state.db = "default"
    for name, perms in data["perms"].items():
        setattr(user, name, set(perms))
    user._stepwise_group_names = frozenset(data["groups"])
    return user


def _active(backend: ModelBackend, user: Any | None) -> Any | None:
    return user if user is not None and backend.user_can_authenticate(user) else None


class CachedModelBackend(ModelBackend):
    """Django's ModelBackend whose `get_user` (every request's user) reads through the cache,
    and which reads a user's permissions and group names by one fixed statement
    (approvals.authrows) instead of compiling two querysets."""

    def get_user(self, user_id: Any) -> Any | None:
        return load_user(user_id)

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if (
            obj is None
            and user_obj.is_active
            and not user_obj.is_anonymous
            and not user_obj.is_superuser
            and not hasattr(user_obj, "_perm_cache")
        ):
            load_permissions(user_obj)
        return super().get_all_permissions(user_obj, obj)


class AuthenticationMiddleware(auth_middleware.AuthenticationMiddleware):
    """Django's, whose `request.user` may use what the session store read along with the
    session (config.cached_sessions: the session and the user's cache keys in one round trip).
    The store's prefetch is offered only while this request's user is loaded, and used at most
    once, for the user the session names; `request.auser` is Django's."""

    def process_request(self, request: HttpRequest) -> None:
        if not hasattr(request, "session"):  # as Django's: it needs SessionMiddleware first
            super().process_request(request)
        request.user = SimpleLazyObject(partial(_get_user, request))
        request.auser = partial(auth_middleware.auser, request)


def _get_user(request: HttpRequest) -> Any:
    """django.contrib.auth.middleware.get_user, with the session's prefetch on offer."""
    if not hasattr(request, "_cached_user"):
        token = _loading_for.set(request.session)
        try:
            request._cached_user = auth.get_user(request)
        finally:
            _loading_for.reset(token)
    return request._cached_user


# -- invalidation ---------------------------------------------------------------------------


def _replace(key: str) -> None:
    def replace() -> None:
        try:
            cache.set(key, secrets.token_hex(8), timeout=None)
        except Exception as error:
            # Redis away: nothing can read a stale entry while it is, and an entry lives at
            # most TTL seconds, so one stored before the outage is gone within TTL of it (the
            # bound changes without signals have). Failing here failed every sign-in
            # (its last_login save) and every user change for the whole outage.
            if not unreachable(error):
                raise
            log_unreachable(logger, "signed-in users", error)

    replace()
    transaction.on_commit(replace, robust=True)


def _user_changed(sender: Any, instance: Any, **_: Any) -> None:
    _replace(_user_gen(instance.pk))


def _anything_changed(sender: Any, **_: Any) -> None:
    _replace(GLOBAL)


def _membership_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[Any] | None, **_: Any
) -> None:
    """user.groups / user.user_permissions changed: that user; from the other side
    (group.user_set.add(...)): the users named, or everyone when Django does not name them."""
    if not action.startswith("post_") and action != "pre_clear":
        return
    if not reverse:
        _replace(_user_gen(instance.pk))
    elif pk_set:
        for pk in pk_set:
            _replace(_user_gen(pk))
    else:
        _replace(GLOBAL)


def _group_permissions_changed(sender: Any, action: str, **_: Any) -> None:
    if action.startswith("post_") or action == "pre_clear":
        _replace(GLOBAL)


def connect() -> None:
    user_model = get_user_model()
    for signal in (post_save, post_delete):
        signal.connect(_user_changed, sender=user_model, dispatch_uid="authcache-user")
        for model in (Group, Permission, ContentType):
            signal.connect(
                _anything_changed, sender=model, dispatch_uid=f"authcache-{model.__name__}"
            )
    m2m_changed.connect(
        _membership_changed, sender=user_model.groups.through, dispatch_uid="authcache-user-groups"
    )
    m2m_changed.connect(
        _membership_changed,
        sender=user_model.user_permissions.through,
        dispatch_uid="authcache-user-permissions",
    )
    m2m_changed.connect(
        _group_permissions_changed,
        sender=Group.permissions.through,
        dispatch_uid="authcache-group-permissions",
    )
