"""SQLite's statements of a measured window, per run (`bench.worker_cpu --statements` on
SQLite): what pg_stat_statements gives on PostgreSQL, from sqlite3's trace callback on every
connection our backend opens in this process (a worker's own, its heartbeat's).

Statements are grouped by their text with literals replaced by `?` (the callback sees them
expanded). A trigger's program is reported again with its statement's text: counted once.
Commits are the write transactions that ended: COMMIT statements, and writing statements run
outside a transaction (a put in autocommit is its own transaction). Tracing costs CPU: take
the CPU figures from a run without it.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

_LITERALS = re.compile(r"x'[0-9a-fA-F]*'|'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")

found: Counter[str] = Counter()
_lock = threading.Lock()
_on = False


def install() -> None:
    """Trace every connection the SQLite backend opens from now on (call before any)."""
    from orchestration.runtime.sqlite_backend import base
    from orchestration.runtime.sqlite_backend.base import starts_write

    original = base.DatabaseWrapper.get_new_connection

    def traced(self: Any, conn_params: dict[str, Any]) -> Any:
        conn = original(self, conn_params)
        last: list[str | None] = [None]

        def seen(sql: str) -> None:
            if not _on or sql == last[0]:
                return
            last[0] = sql
            text = _LITERALS.sub("?", " ".join(sql.split()))[:160]
            autocommit_write = (not conn.in_transaction and starts_write(text)
                                and not text.startswith("BEGIN"))
            with _lock:
                found[text] += 1
                if text.startswith("COMMIT") or autocommit_write:
                    found["(commits)"] += 1

        conn.set_trace_callback(seen)
        return conn

    base.DatabaseWrapper.get_new_connection = traced


def reset() -> None:
    global _on
    with _lock:
        found.clear()
    _on = True


def stop() -> Counter[str]:
    global _on
    _on = False
    with _lock:
        return Counter(found)


def per_run(counts: Counter[str], runs: int) -> dict[str, Any]:
    """Statements per run, most frequent first, with the totals (BEGIN/COMMIT counted)."""
    per = max(runs, 1)
    commits = counts.pop("(commits)", 0)
    listed = [{"query": q, "calls": round(n / per, 2)} for q, n in counts.most_common()]
    return {"per_run": {"statements": round(sum(counts.values()) / per, 2),
                        "commits": round(commits / per, 2)},
            "statements": listed}
