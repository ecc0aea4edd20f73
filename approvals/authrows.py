"""The signed-in user's row, and their permissions and group names, read by two fixed
statements.

Django's ModelBackend reads a request's user with a queryset (`get(pk=...)`) and, at the first
`has_perm`, their own permissions and their groups' permissions with two more; our group names
(approvals.access) were a fourth. Compiling those querysets cost more than running them: about
a fifth of a page's server CPU when the user is not cached (no shared cache, or a miss of
approvals.authcache). Here the statements' text is made once per process from the models' own
tables and columns, and one of them reads all three sets (`UNION ALL`), so a request costs two
statements and no compilation. Every request still reads the database: nothing here can go
stale in one process while another changes a group.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection

from orchestration.runtime.rowread import columns, instance

# the first column of a permissions row says which set it belongs to
_USER, _GROUP, _NAME = "u", "g", "n"


def read_user(user_id: Any) -> Any | None:
    """User `user_id` (any form its primary key takes in a session), or None if there is none;
    as `ModelBackend.get_user` reads it, without its activity check."""
    model = get_user_model()
    try:
        pk = model._meta.pk.to_python(user_id)
    except ValidationError:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_user_sql(connection.vendor), [pk])
        row = cursor.fetchone()
    return instance(model, row) if row else None


def load_permissions(user: Any) -> None:
    """Fill Django's permission caches on `user` (`_user_perm_cache`, `_group_perm_cache`,
    `_perm_cache`: what ModelBackend's `get_all_permissions` would fill) and our group names
    (`_stepwise_group_names`) from one statement. For an active user who is not a superuser:
    a superuser has every permission, which Django's own code reads."""
    assert user.is_active and not user.is_superuser, "Django's own path for these"
    found: dict[str, set[str]] = {_USER: set(), _GROUP: set(), _NAME: set()}
    with connection.cursor() as cursor:
        cursor.execute(_permissions_sql(connection.vendor), [user.pk] * 3)
        for kind, app_label, name in cursor.fetchall():
            found[kind].add(f"{app_label}.{name}" if kind != _NAME else name)
    user._user_perm_cache = found[_USER]
    user._group_perm_cache = found[_GROUP]
    user._perm_cache = found[_USER] | found[_GROUP]
    user._stepwise_group_names = frozenset(found[_NAME])


@functools.cache
def _user_sql(vendor: str) -> str:
    """`get_user_model().objects.get(pk=...)`'s statement, fixed once per process."""
    q = connection.ops.quote_name
    model = get_user_model()
    meta = model._meta
    return (
        f"SELECT {columns(model)} FROM {q(meta.db_table)} "  # noqa: S608 - names from the model
        f"WHERE {q(meta.pk.column)} = %s"
    )


@functools.cache
def _permissions_sql(vendor: str) -> str:
    """The user's own permissions, their groups' permissions and their groups' names, as
    (set, app label, codename or name) rows: the three querysets' joins (ModelBackend's
    `user_permissions` and `group__user` filters, `user.groups`), fixed once per process."""
    q = connection.ops.quote_name
    user_field = get_user_model()._meta.get_field("user_permissions")
    groups_field = get_user_model()._meta.get_field("groups")
    perms_field = Group._meta.get_field("permissions")
    user_perms, user_groups = user_field.m2m_db_table(), groups_field.m2m_db_table()
    group_perms = perms_field.m2m_db_table()
    perm, ctype, group = (m._meta.db_table for m in (Permission, ContentType, Group))
    labelled = (
        f"INNER JOIN {q(perm)} p ON p.id = x.perm "
        f"INNER JOIN {q(ctype)} c ON c.id = p.content_type_id"
    )
    return (
        f"SELECT '{_USER}', c.app_label, p.codename FROM ("  # noqa: S608 - names from models
        f"SELECT {q(user_field.m2m_reverse_name())} AS perm FROM {q(user_perms)} "
        f"WHERE {q(user_field.m2m_column_name())} = %s) x {labelled} "
        f"UNION ALL SELECT '{_GROUP}', c.app_label, p.codename FROM ("
        f"SELECT gp.{q(perms_field.m2m_reverse_name())} AS perm FROM {q(user_groups)} ug "
        f"INNER JOIN {q(group_perms)} gp "
        f"ON gp.{q(perms_field.m2m_column_name())} = ug.{q(groups_field.m2m_reverse_name())} "
        f"WHERE ug.{q(groups_field.m2m_column_name())} = %s) x {labelled} "
        f"UNION ALL SELECT '{_NAME}', '', g.name FROM {q(user_groups)} ug "
        f"INNER JOIN {q(group)} g ON g.id = ug.{q(groups_field.m2m_reverse_name())} "
        f"WHERE ug.{q(groups_field.m2m_column_name())} = %s"
    )
