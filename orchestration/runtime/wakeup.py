"""Waking idle workers when a task is enqueued, instead of waiting for their next poll.

On PostgreSQL, saving a new task row (django-tasks-db's `DBTaskResult`) also runs
`pg_notify` on the same connection, so the notification joins the enqueueing transaction
and is delivered when it commits, never before the row is visible (a rolled-back enqueue
notifies nobody). `stepwise_worker` LISTENs on a connection of its own and waits for a
notification with its poll interval as the timeout: polling stays as the fallback, for
SQLite (no LISTEN/NOTIFY), deferred tasks and a listening connection that dropped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import connections

logger = logging.getLogger(__name__)

CHANNEL = "stepwise_tasks"


def notify_task_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """`post_save` receiver for `DBTaskResult`: a new row wakes the listening workers."""
    if not created:
        return
    connection = connections[kwargs.get("using") or instance._state.db or "default"]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, instance.queue_name])


class Waiter:
    """Blocks until a task is announced or `timeout` passes.

    Holds one extra PostgreSQL connection in autocommit, LISTENing on `CHANNEL`; on any
    other database (or after the connection failed) it sleeps, like the polling loop.
    """

    def __init__(self, using: str = "default") -> None:
        self.using = using
        self._conn: Any = None
        self._listen()

    @property
    def listening(self) -> bool:
        return self._conn is not None

    def _listen(self) -> None:
        connection = connections[self.using]
        if connection.vendor != "postgresql":
            return
        import psycopg

        try:
            params = connection.get_connection_params()
            self._conn = psycopg.connect(**params, autocommit=True)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error:
            logger.warning("cannot LISTEN for new tasks; polling instead", exc_info=True)
            self.close()

    def wait(self, timeout: float) -> bool:
        """True if woken by a notification. Notifications that piled up while the worker ran
        a task wake the next wait at once: one extra check, then the worker sleeps again."""
        if self._conn is None:
            time.sleep(timeout)
            self._listen()  # the server may be back: listen again for the next wait
            return False
        import psycopg

        try:
            return any(True for _ in self._conn.notifies(timeout=timeout, stop_after=1))
        except psycopg.Error:
            logger.warning("lost the LISTEN connection; polling until it is back", exc_info=True)
            self.close()
            return False

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
