"""pg_stat_statements of a measured window, per review cycle (`bench.load --statements`,
`bench.worker_cpu --statements`).

The database server must load the extension (`shared_preload_libraries =
'pg_stat_statements'`, and `pg_stat_statements.track_planning = on` for plans): a throwaway
cluster, as the statistics are the whole server's and a reset clears them for everyone.
"""

from __future__ import annotations

from typing import Any

RESET = ("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "SELECT pg_stat_statements_reset()")
# this database's statements, dearest first; the bench's own reset and read left out
READ = (
    "SELECT query, calls, plans, total_plan_time, total_exec_time, rows"
    " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
    " WHERE d.datname = current_database() AND query NOT LIKE '%%pg_stat_statements%%'"
    " ORDER BY total_plan_time + total_exec_time DESC"
)


def add(into: dict[str, list[float]], rows: list[tuple[Any, ...]]) -> None:
    """Add `READ`'s rows to `into` (query -> calls, plans, plan ms, exec ms, rows)."""
    for query, *values in rows:
        sums = into.setdefault(query, [0.0] * len(values))
        for i, value in enumerate(values):
            sums[i] += value


def per_cycle(found: dict[str, list[float]], cycles: int) -> dict[str, Any]:
    """`found` per cycle, dearest first, and the totals."""
    per = max(cycles, 1)
    listed = sorted(
        (
            {
                "query": q,
                "calls": round(c / per, 2),
                "plans": round(p / per, 2),
                "plan_ms": round(pt / per, 3),
                "exec_ms": round(et / per, 3),
                "rows": round(r / per, 2),
            }
            for q, (c, p, pt, et, r) in found.items()
        ),
        key=lambda s: -(s["plan_ms"] + s["exec_ms"]),
    )
    total = {
        k: round(sum(s[k] for s in listed), 3) for k in ("calls", "plans", "plan_ms", "exec_ms")
    }
    return {"per_cycle": total, "statements": listed}
