"""The check the PostgreSQL connection pool runs on a connection before it hands it out.

After PostgreSQL restarted (or a backend was terminated), every idle pooled connection is
dead, and without a check each is handed to a request or a run that then fails on its first
query. Django skips its own CONN_HEALTH_CHECKS under a pool, trusting the pool to check.

psycopg_pool's own `ConnectionPool.check_connection` sends an empty query: a round trip per
borrow (measured ~60-75 us of client CPU and ~0.3 ms on this machine; a request borrows at
least once). This one asks the kernel first, for free: the server announces what ends a
connection (its FATAL message on a shutdown or a terminate, then end-of-file), so an idle
connection whose socket has something to read is probably dead; only then is the round
trip made, and it raises if so. A server that vanished without a word (its machine lost
power) is not seen here; the query then fails, and a run stalls for the sweeper
(orchestration.runtime.dbfailure).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg._preparing import Prepare, PrepareManager
from psycopg.pq import ExecStatus
from psycopg_pool import ConnectionPool

from orchestration.runtime.write_behind import server_spoke

__all__ = ["KeepPreparedConnection", "check_connection"]


def check_connection(conn: Any) -> None:
    """Raise if `conn` (a psycopg connection, idle in the pool) is no longer usable."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    if server_spoke(conn):  # probably its goodbye: the round trip says for sure, and raises
        ConnectionPool.check_connection(conn)


class _KeepAcrossRollback(PrepareManager):
    """psycopg's cache of prepared statements, kept when a transaction rolls back.

    psycopg deallocates every prepared statement of a connection (DEALLOCATE ALL) after any
    ROLLBACK or ROLLBACK TO SAVEPOINT, erring on the safe side. PostgreSQL's prepared
    statements are not transactional, though: a rollback leaves them in place, and a plan
    whose tables changed is revalidated by the server. Under the load test every refused
    decision (409: another reviewer was first) rolls back, about five per review cycle, so
    with STEPWISE_DB_PREPARED each pooled connection lost its statements every few dozen
    queries and nearly every query was parsed and planned again: no gain at all. DROP, ALTER,
    DISCARD ALL and DEALLOCATE ALL still clear the cache, as in psycopg.
    """

    keep = False  # set while Connection.rollback runs (it calls clear() itself)

    def clear(self) -> bool:
        if self.keep:
            return False
        return super().clear()

    def _should_discard(self, prep: Prepare, results: Sequence[Any]) -> bool:
        if results and all(
            r.status == ExecStatus.COMMAND_OK and (r.command_status or b"").startswith(b"ROLLBACK")
            for r in results
        ):
            return False
        return super()._should_discard(prep, results)


class KeepPreparedConnection(psycopg.Connection[Any]):
    """The pool's connection under STEPWISE_DB_PREPARED: its prepared statements survive a
    rollback (`_KeepAcrossRollback`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # fresh, before connect() sets the threshold on it
        self._prepared = _KeepAcrossRollback()

    def rollback(self) -> None:
        manager = self._prepared
        if not isinstance(manager, _KeepAcrossRollback):
            super().rollback()
            return
        manager.keep = True
        try:
            super().rollback()
        finally:
            manager.keep = False
