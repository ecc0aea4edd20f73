"""Markdown table of `python -m bench.load --out FILE` results (one JSON object a line).

    python -m bench.load.table FILE [LABEL ...]
"""

from __future__ import annotations

import json
import sys
from typing import Any

KINDS = ["inbox", "review page", "decide (form)", "api decide", "api start run"]


def cell(r: dict[str, Any], kind: str) -> str:
    q = r["requests"].get(kind)
    return f"{q['p50']:.0f} / {q['p95']:.0f} / {q['p99']:.0f}" if q else "-"


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    wanted = sys.argv[2:]
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
        ok = (acct["finished"] == r["cycles"] and acct["runs_resumed_twice"] == 0
              and acct["runs_not_ended"] == 0 and acct["failed_runs"] == 0)
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
