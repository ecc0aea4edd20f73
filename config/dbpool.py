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

from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from orchestration.runtime.write_behind import server_spoke

__all__ = ["check_connection"]


def check_connection(conn: Any) -> None:
    """Raise if `conn` (a psycopg connection, idle in the pool) is no longer usable."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    if server_spoke(conn):  # probably its goodbye: the round trip says for sure, and raises
        ConnectionPool.check_connection(conn)
