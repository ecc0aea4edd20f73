"""A decision's row and its `review_decided` event, written in one statement on PostgreSQL.

`do_decide` ends by inserting the decision (naming the run it queued) and recording the
event; the two ORM inserts were compiled on every decision. Here they are one statement of
fixed text, in the decision's transaction, with the values the ORM's inserts send (from the
same unsaved `Decision`, each field's `pre_save` and database preparation). The model's
`pre_save` and `post_save` signals are sent as `Model.save` sends them (the webhook and
metrics receivers see the same saved instance), and the event is pushed as `publish`
pushes it. The decision-per-review constraint refuses a second decision as before (an
IntegrityError). On SQLite the decision's insert is a fixed statement too, then `publish`.
Elsewhere: `Decision.save` and `publish`, as before.

Either statement also answers the reads registered with `runend.read_along` (the webhooks'
"is any endpoint active"), for the `post_save` receivers only (`runend.reads_answered`): a
decision with no endpoint configured sends no query for the endpoints.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from approvals.models import Decision, ReviewRequest
from orchestration.runtime.events import announce, publish
from orchestration.runtime.models import Event, Run
from orchestration.runtime.runend import along_sql, reads_answered

__all__ = ["record_decided"]


def _fields() -> list[Any]:
    return [f for f in Decision._meta.concrete_fields if not f.primary_key]


@functools.cache
def _sql() -> str:
    q = connection.ops.quote_name
    fields = _fields()
    return (
        f"WITH d AS (INSERT INTO {q(Decision._meta.db_table)} "  # noqa: S608 - model names
        f"({', '.join(q(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id), "
        f"e AS (INSERT INTO {q(Event._meta.db_table)} "
        "(kind, thread_id, run_id, actor_id, reason, data, created_at) "
        "VALUES ('review_decided', %s, %s, %s, %s, %s, %s) RETURNING id) "
        f"SELECT d.id, e.id{along_sql()} FROM d, e"
    )


@functools.cache
def _sqlite_sql() -> str:
    q = connection.ops.quote_name
    fields = _fields()
    return (f"INSERT INTO {q(Decision._meta.db_table)} "  # noqa: S608 - model names
            f"({', '.join(q(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id{along_sql()}")


def record_decided(user: Any, review: ReviewRequest, decision: Decision, run: Run,
                   reason: str, data: dict[str, Any]) -> None:
    """Save the unsaved `decision` naming `run`, and record `review_decided` (by `user`,
    `reason`, `data`) on the review's thread."""
    decision.resumed_run = run
    vendor = connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        decision.save(force_insert=True)
        publish("review_decided", thread=review.thread, run=run, actor=user, reason=reason,
                data=data)
        return
    using = connection.alias
    pre_save.send(sender=Decision, instance=decision, raw=False, using=using,
                  update_fields=None)
    params = [f.get_db_prep_save(f.pre_save(decision, True), connection) for f in _fields()]
    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute(_sqlite_sql(), params)
            decision.pk, *reads = cursor.fetchone()
        else:
            actor = user.pk if getattr(user, "is_authenticated", False) else None
            params += [review.thread_id, run.pk, actor, reason,
                       Event._meta.get_field("data").get_db_prep_save(data, connection),
                       timezone.now()]
            cursor.execute(_sql(), params)
            decision.pk, event_id, *reads = cursor.fetchone()
    decision._state.adding = False
    decision._state.db = using
    with reads_answered(reads):
        post_save.send(sender=Decision, instance=decision, created=True, update_fields=None,
                       raw=False, using=using)
    if vendor == "sqlite":
        publish("review_decided", thread=review.thread, run=run, actor=user, reason=reason,
                data=data)
    else:
        announce(event_id, "review_decided", thread=review.thread, run=run)
