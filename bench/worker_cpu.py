"""What one run execution costs a task worker: CPU-ms, commits and sessions, per execution.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stepwise_x python -m bench.worker_cpu \
        [--runs 40] [--rounds 3]
    SQLITE_PATH=/tmp/x.sqlite3 python -m bench.worker_cpu --migrate [--statements out.json]

Creates `--runs` expense threads (each pauses at its review), then executes their tasks in
this process exactly as `manage.py stepwise_worker` does (its claim of the next task, then
django-tasks-db's `run_task` calling `execute_run`); then decides every review (the real
`approvals.actions.do_decide`, which queues the resume run) and executes those tasks too.
The first round warms the process up (imports, graph compile) and is reported apart.

Reported per run (per thread and phase: the start phase also runs the review's e-mail task,
as a worker of the load test does): process CPU time (every thread of the process: the run, its
write-behind and heartbeat threads, the pusher), and from PostgreSQL's statistics of the
database (`pg_stat_database`): transactions committed and sessions opened; and the CPU time
of the PostgreSQL backends serving the database (`pg_ms_per_run`, from /proc: the database
server must run on this machine; every session of the database counts, so give the bench a
database of its own). The threads are started and the decisions made outside the measured
windows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from approvals.actions import DecisionInput, do_decide  # noqa: E402
from approvals.models import ReviewRequest  # noqa: E402
from bench import pgstatements, sqlitestatements  # noqa: E402
from orchestration.runtime.management.commands.stepwise_worker import WakingWorker  # noqa: E402
from orchestration.runtime.runs import start_thread  # noqa: E402
from orchestration.runtime.write_behind import close_writers  # noqa: E402

try:
    from orchestration.runtime.tasks import keep_writer_between_runs as keep_writer
except ImportError:  # a tree from before it (A/B runs)
    keep_writer = contextlib.nullcontext


def expense(i: int) -> dict[str, object]:
    return {"expense_id": i, "employee": f"Bench {i % 17}", "vendor": "Office Supplies Co",
            "amount": 150 + i % 400, "currency": "EUR", "description": f"bench item {i}"}


def db_stats() -> dict[str, int]:
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit, sessions, tup_inserted, tup_updated FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        commit, sessions, ins, upd = cursor.fetchone()
    return {"commits": commit, "sessions": sessions, "inserted": ins, "updated": upd}


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def backends_cpu_ms() -> dict[int, float]:
    """CPU-ms so far of each PostgreSQL backend connected to this database ({} elsewhere, or
    when the server's /proc is not this machine's)."""
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        pids = [pid for (pid,) in cursor.fetchall()]
    cpu = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu[pid] = (int(fields[11]) + int(fields[12])) * TICK_MS
    return cpu


def statements_reset() -> None:
    with connection.cursor() as cursor:
        for sql in pgstatements.RESET:
            cursor.execute(sql)


def statements_add(found: dict[str, list[float]]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(pgstatements.READ)
        pgstatements.add(found, cursor.fetchall())


def drain(worker: WakingWorker, statements: dict[str, list[float]] | None = None,
          traced: list[Counter[str]] | None = None,
          ) -> tuple[int, float, float, dict[str, int]]:
    """Execute every ready task; (executions, CPU s, wall s, database deltas). With
    `statements`, add the window's pg_stat_statements to it; with `traced` (SQLite), append
    the window's statements (`sqlitestatements`)."""
    time.sleep(0.7)  # the statistics collector flushes at most every 0.5-1 s
    if statements is not None:
        statements_reset()
    if traced is not None:
        sqlitestatements.reset()
    before = db_stats()
    pg_before = backends_cpu_ms()
    t0, cpu0, wall0 = os.times(), time.process_time(), time.perf_counter()
    n = 0
    with keep_writer():  # as the worker's loop: one write-behind connection while busy
        while True:
            task_result, _ = worker._claim_next()
            if task_result is None:
                break
            worker.run_task(task_result)
            n += 1
        # before the write-behind connection closes: its backend's CPU goes with it
        pg_after = backends_cpu_ms()
    close_writers()  # as the worker does when it goes idle
    if statements is not None:
        statements_add(statements)
    if traced is not None:
        traced.append(sqlitestatements.stop())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    t1 = os.times()
    sys_share = (t1.system - t0.system) / max(cpu, 1e-9)
    time.sleep(1.2)
    after = db_stats()
    pg_ms = sum(ms - pg_before.get(pid, 0.0) for pid, ms in pg_after.items())
    return n, cpu, wall, {"sys_share": sys_share, "pg_ms": pg_ms,
                          **{k: after[k] - before[k] for k in after}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--migrate", action="store_true")
    parser.add_argument("--statements", type=Path, metavar="JSON",
                        help="write the warm rounds' pg_stat_statements, per review cycle, "
                        "here (see bench/pgstatements.py); on SQLite the statements and "
                        "commits per run of each phase, traced (bench/sqlitestatements.py: "
                        "tracing costs CPU, take CPU figures from a run without it)")
    args = parser.parse_args()
    sqlite = connection.vendor == "sqlite"
    if args.statements and sqlite:
        sqlitestatements.install()  # before the first connection
    if args.migrate:
        call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="bench-worker-cpu")
    user.groups.add(Group.objects.get(name="reviewer"), Group.objects.get(name="ops"))
    user = get_user_model().objects.get(pk=user.pk)
    worker = WakingWorker(queue_names=["default"], interval=1, batch=False,
                          backend_name="default", startup_delay=False, max_tasks=None,
                          worker_id="bench-worker-cpu", excluded_queue_names=[])
    rows = []
    found: dict[str, list[float]] = {}
    traced_phases: dict[str, list[tuple[Counter[str], int]]] = {}
    base = int(time.time()) % 100_000 * 100
    for rnd in range(args.rounds):
        threads = [start_thread("expense", expense(base + rnd * 1000 + i), user=user,
                                title=f"bench {rnd}.{i}").thread for i in range(args.runs)]
        for phase in ("start", "resume"):
            if phase == "resume":
                for review in ReviewRequest.objects.filter(thread__in=threads,
                                                           status__in=ReviewRequest.OPEN):
                    do_decide(user, review, DecisionInput(action="approve"))
            traced: list[Counter[str]] | None = [] if args.statements and sqlite and rnd \
                else None
            n, cpu, wall, db = drain(
                worker, found if args.statements and rnd and not sqlite else None, traced)
            if traced:
                traced_phases.setdefault(phase, []).append((traced[0], len(threads)))
            per = len(threads)
            rows.append({"round": rnd, "phase": phase, "tasks": n,
                         "cpu_ms_per_run": cpu * 1000 / per, "wall_ms_per_run": wall * 1000 / per,
                         "sys_share": db.pop("sys_share"),
                         "pg_ms_per_run": db.pop("pg_ms") / per,
                         **{f"{k}_per_run": v / per for k, v in db.items()}})
    for row in rows:
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}))
    warm = [r for r in rows if r["round"] > 0]
    if warm:
        start = statistics.median(r["cpu_ms_per_run"] for r in warm if r["phase"] == "start")
        resume = statistics.median(r["cpu_ms_per_run"] for r in warm if r["phase"] == "resume")
        pg = sum(statistics.median(r["pg_ms_per_run"] for r in warm if r["phase"] == phase)
                 for phase in ("start", "resume"))
        print(f"warm rounds, worker CPU-ms: start {start:.1f} (the run and its review's email "
              f"task), resume {resume:.1f}; per review cycle {start + resume:.1f}; "
              f"PostgreSQL backends {pg:.1f}")
    if args.statements and sqlite:
        per_phase = {}
        for phase, windows in traced_phases.items():
            total: Counter[str] = Counter()
            for counts, _ in windows:
                total.update(counts)
            per_phase[phase] = sqlitestatements.per_run(total, sum(n for _, n in windows))
        args.statements.write_text(json.dumps(per_phase, indent=1))
        print("warm rounds, per run: " + "; ".join(
            f"{phase} {p['per_run']['statements']} statements, {p['per_run']['commits']} commits"
            for phase, p in per_phase.items()))
    elif args.statements:
        per = pgstatements.per_cycle(found, args.runs * (args.rounds - 1))
        args.statements.write_text(json.dumps(per, indent=1))
        print(f"warm rounds, statements per review cycle: {per['per_cycle']}")

if __name__ == "__main__":
    main()
