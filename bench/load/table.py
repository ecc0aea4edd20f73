"""Markdown table of `python -m bench.load --out FILE` results (one JSON object a line).

    python -m bench.load.table FILE [LABEL ...]      # one row per run
    python -m bench.load.table --by-config FILE      # one row per configuration: range (median)

At full rate the profile's processes saturate the two cores, and single runs of the same
code spread by 15-25% on a shared machine: compare configurations by their medians over
several runs, not by one run each.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from typing import Any

KINDS = ["inbox", "review page", "decide (form)", "api decide", "api start run"]


def cell(r: dict[str, Any], kind: str) -> str:
    q = r["requests"].get(kind)
    return f"{q['p50']:.0f} / {q['p95']:.0f} / {q['p99']:.0f}" if q else "-"


def accounted(r: dict[str, Any]) -> bool:
    """Every run of the window finished, none resumed twice or failed."""
    acct = r["accounting"]
    return (acct["finished"] == r["cycles"] and acct["runs_resumed_twice"] == 0
            and acct["runs_not_ended"] == 0 and acct["failed_runs"] == 0)


def spread(values: list[float], digits: int = 1) -> str:
    """`low-high (median)`, or the one value."""
    v = sorted(values)
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v[0]:.{digits}f}-{v[-1]:.{digits}f} ({statistics.median(v):.{digits}f})"


def by_config(rows: list[dict[str, Any]]) -> None:
    """One row per (database, server, M, N, reviewers, asked rate)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        server = "runserver" if r["target"] == "runserver" else r["server"]
        groups[(r["reviewers"], r.get("rate") or 0, r["db"], server, r["servers"],
                r["workers"])].append(r)
    head = ["db, server x M, workers N", "reviewers", "asked rate", "runs",
            "decisions/s: range (median)", "CPU-ms per cycle: range (median)",
            "server / worker / PostgreSQL, medians",
            "decision to run finished p95 ms: range (median)", "HTTP 5xx", "runs accounted"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for (reviewers, rate, db, server, m, n), runs in sorted(groups.items()):
        cpu = [r["cpu_ms_per_cycle"] for r in runs]

        def median(kind: str, cpu: list[dict[str, float]] = cpu) -> str:
            return f"{statistics.median(c.get(kind, 0) for c in cpu):.0f}"

        p95 = [r["decision_to_finished_ms"]["p95"] for r in runs
               if r["decision_to_finished_ms"]["p95"] is not None]
        print("| " + " | ".join([
            f"{'PostgreSQL' if db == 'pg' else 'SQLite'}, {server} x {m}, {n}", str(reviewers),
            f"{rate:g}" if rate else "max", str(len(runs)),
            spread([r["decisions_per_s"] for r in runs]),
            spread([c["total"] for c in cpu], 0),
            f"{median('server')} / {median('worker')} / "
            + (median("postgres") if db == "pg" else "-"),
            spread(p95, 0) if p95 else "-", str(sum(r["http_5xx"] for r in runs)),
            "all, once" if all(accounted(r) for r in runs) else "NO",
        ]) + " |")


def main() -> None:
    args = sys.argv[1:]
    grouped = "--by-config" in args
    args = [a for a in args if a != "--by-config"]
    rows = [json.loads(line) for line in open(args[0]) if line.strip()]
    if grouped:
        by_config(rows)
        return
    wanted = args[1:]
    if wanted:
        rows = [r for label in wanted for r in rows if r["label"] == label]
    head = ["run", "db", "server x M, workers N", "reviewers", "cycles",
            "decisions/s (asked rate)",
            "CPU-ms per cycle: server / worker / PostgreSQL / sweepers = total",
            "requests per cycle", "server CPU-ms per request",
            "decision to run finished p50 / p95 ms", *[f"{k} p50/p95/p99 ms" for k in KINDS],
            "HTTP 5xx: client / server log", "409 conflicts", "websockets opened / failed",
            "runs accounted", "load avg (1 min)"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for r in rows:
        c = r["cpu_ms_per_cycle"]
        acct = r["accounting"]
        ok = accounted(r)
        server = "runserver" if r["target"] == "runserver" else r["server"]
        d2f = r["decision_to_finished_ms"]
        # pages, API calls and starts in the window (logins happen before it opens)
        requests = max(1, sum(q["n"] for k, q in r["requests"].items()
                              if k not in ("login", "login page", "thread socket")))
        print("| " + " | ".join([
            r["label"], r["db"], f"{server} x {r['servers']}, {r['workers']}",
            str(r["reviewers"]), str(r["cycles"]),
            f"{r['decisions_per_s']:.1f}" + (f" ({r['rate']:g})" if r.get("rate") else ""),
            f"{c.get('server', 0):.0f} / {c.get('worker', 0):.0f} / {c.get('postgres', 0):.0f}"
            f" / {c.get('sweepers', 0):.0f} = **{c['total']:.0f}**",
            f"{requests / r['cycles']:.1f}", f"{c.get('server', 0) * r['cycles'] / requests:.1f}",
            f"{d2f['p50']:.0f} / {d2f['p95']:.0f}" if d2f["p50"] is not None else "-",
            *[cell(r, k) for k in KINDS],
            f"{r['http_5xx']} / {r.get('server_5xx', '-')}", str(r["conflicts"]),
            f"{r['status_counts'].get('ws opened', 0)} / {r['status_counts'].get('ws failed', 0)}",
            ("all, once" if ok else f"NO: {acct}"), f"{r['loadavg_1m']:.0f}",
        ]) + " |")


if __name__ == "__main__":
    main()
