"""Sessions in the database (`SESSION_ENGINE` without Redis), read by a fixed statement.

Every request reads its session. Django's database store reads it with a queryset
(`Session.objects.get(session_key=..., expire_date__gt=now)`) whose compilation cost several
times the read itself; here the statement's text is made once per process. Writes, expiry and
key rotation are Django's own.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone

from orchestration.runtime.rowread import columns, instance


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Any | None:
        """The unexpired row of this session's key, or None (and no key: a new session starts
        at the next write), as Django's `_get_session_from_db`."""
        model = self.model
        using = router.db_for_read(model)
        connection = connections[using]
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.execute(_session_sql(model, using), [self.session_key, now])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return instance(model, row, using=using)


@functools.cache
def _session_sql(model: Any, using: str) -> str:
    q = connections[using].ops.quote_name
    meta = model._meta
    return (
        f"SELECT {columns(model, using)} FROM {q(meta.db_table)} "  # noqa: S608 - names from the model
        f"WHERE {q(meta.pk.column)} = %s AND {q(meta.get_field('expire_date').column)} > %s"
    )
