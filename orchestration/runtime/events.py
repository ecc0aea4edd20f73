"""Record what happened as an `Event` row and push it to open pages.

The row is the audit trail and the fallback feed: pages without a shared channel layer poll
`Event` rows with an id above the last they saw, so a worker in another process still
updates them. With Redis configured the push arrives at once.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from orchestration.runtime import rowwrite
from orchestration.runtime.models import Event, Run, Thread
from orchestration.runtime.pusher import pusher_for

logger = logging.getLogger(__name__)

GROUPS = ("inbox", "ops")
# Pushed to the thread's page only: the inbox and ops pages ignore them (their consumers'
# `QUIET_KINDS` are this set), so sending them there cost a Redis round trip per page group
# and a wake-up of every open inbox and ops socket for nothing. Their rows are written as
# for any event.
THREAD_ONLY_KINDS = frozenset({"run_progress", "run_output"})


def thread_group(thread_id: str) -> str:
    """Channel group of one thread's page (group names allow only [a-zA-Z0-9_.-])."""
    safe = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in thread_id)
    return f"thread-{safe}"[:99]


def publish(
    kind: str,
    *,
    thread: Thread | None = None,
    run: Run | None = None,
    actor: Any = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> Event:
    if thread is None and run is not None:
        thread = run.thread
    event = Event(
        kind=kind,
        thread=thread,
        run=run,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        reason=reason,
        data=data or {},
    )
    rowwrite.insert(event)  # `Event.objects.create`, by a statement fixed once
    announce(event.pk, kind, thread=thread, run=run)
    return event


class EventNaming:
    """The event `kind` that records a row being inserted (`data` = {`key`: its id}), written
    by the statement that inserts the row (`rowwrite.insert(..., along=)`, PostgreSQL): what
    `publish` after the insert wrote, in one round trip fewer. `announce()` once inserted."""

    def __init__(self, kind: str, *, thread: Thread, run: Run | None, key: str) -> None:
        self.kind, self.thread, self.run = kind, thread, run
        self.key = key
        self.sql = _naming_sql()
        self.types = _NAMING_TYPES
        self.value: int | None = None  # the event's id, once written

    @property
    def params(self) -> dict[str, Any]:
        """Asked for once the row's own values are stamped: `created_at` (`auto_now_add`) is
        then, after the row's, as `publish` after the insert stamped it."""
        return {"event_kind": self.kind, "event_thread": self.thread.pk,
                "event_run": self.run.pk if self.run is not None else None,
                "event_key": self.key, "event_now": timezone.now()}

    def announce(self) -> None:
        """Push the written event, as `publish` does."""
        if self.value is not None:
            announce(self.value, self.kind, thread=self.thread, run=self.run)


_NAMING_TYPES = {"event_kind": "text", "event_thread": "int8", "event_run": "int8",
                 "event_key": "text", "event_now": "timestamptz"}


@functools.cache
def _naming_sql() -> str:
    table = connection.ops.quote_name(Event._meta.db_table)
    # reason "" and data {key: id}: what `publish(kind, thread=, run=, data={key: id})` writes
    return (f"INSERT INTO {table} (kind, thread_id, run_id, actor_id, reason, data, "  # noqa: S608
            "created_at) SELECT %(event_kind)s, %(event_thread)s, %(event_run)s, NULL, '', "
            "jsonb_build_object(%(event_key)s, n.pk), %(event_now)s FROM n RETURNING id")


def announce(event_id: int, kind: str, *, thread: Thread | None, run: Run | None) -> None:
    """Push the stored event `event_id` to the pages that show it, once the transaction that
    wrote its row commits (for a row written by other means than `publish`)."""
    message = {
        "type": "stepwise.event",
        "event_id": event_id,
        "kind": kind,
        "thread_id": thread.thread_id if thread is not None else None,
        "run_id": run.pk if run is not None else None,
    }
    groups = [] if kind in THREAD_ONLY_KINDS else list(GROUPS)
    if thread is not None:
        groups.append(thread_group(thread.thread_id))
    if groups:
        transaction.on_commit(lambda: _push(groups, message))


def _push(groups: list[str], message: dict[str, Any]) -> None:
    # A push is a courtesy: the row is committed and pollers will see it, so a channel
    # layer that is down must never fail the state change that produced the event.
    layer = get_channel_layer()
    if layer is None:
        return
    pusher = pusher_for(layer)
    if pusher is not None:  # Redis: sent by the process's push loop, the caller goes on
        pusher.push(groups, message)
        return
    try:
        send = async_to_sync(layer.group_send)
        for group in groups:
            send(group, message)
    except Exception:  # noqa: BLE001
        logger.warning("could not push event %s to the channel layer", message, exc_info=True)
