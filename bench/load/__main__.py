"""Load test of the serving profile: simulated reviewers against real processes.

    .venv/bin/python -m bench.load --db pg --servers 2 --workers 2 --reviewers 20 --cycles 300
    .venv/bin/python -m bench.load --db sqlite --servers 1 --workers 1
    .venv/bin/python -m bench.load --db pg --target runserver     # "before": as bin/demo serves
    .venv/bin/python -m bench.load --db pg --rate 12              # latency at a fixed rate

It makes a fresh database (PostgreSQL `--database-url`, or a SQLite file in a temp dir),
seeds reviewers and a backlog of expense runs waiting for review, starts the serving profile
(`Procfile` under honcho: `--servers` uvicorn processes, `--workers` task workers, the
sweepers) or `runserver` like `bin/demo`, and drives it with locust (bench/load/locustfile.py).
The measurement window opens when every reviewer has logged in and closes after `--cycles`
decisions. With `--rate R` the reviewers decide R times a second together, evenly spaced (an
open loop: decision-to-run-finished latency at that rate, e.g. 80% of the rate reached
without it). It prints one JSON object (and appends it to `--out`): decisions per second, p50 /
p95 / p99 per request kind, HTTP status counts, decision-to-run-finished latency, and CPU
milliseconds per review cycle per process kind (server, worker, sweepers, PostgreSQL backends
of this database), read from /proc/<pid>/stat of each process before and after the window.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import pgstatements

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
BIN = Path(PY).parent
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


# -- processes and their CPU ----------------------------------------------------------------


def cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(pid: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kind_of(pid: int) -> str | None:
    line = cmdline(pid)
    if "stepwise_worker" in line or "db_worker" in line:
        return "worker"
    if "resume_stalled" in line or "sweep_reviews" in line:
        return "sweepers"
    if any(s in line for s in ("uvicorn", "granian", "daphne", "runserver", "multiprocessing")):
        return "server"
    return None


class CpuSampler:
    """Samples the CPU ticks of every process of the profile (and of this database's PostgreSQL
    backends) twice a second, so processes that come and go inside the window are counted."""

    def __init__(self, root_pid: int, pg_dsn: str | None, db_name: str | None) -> None:
        self.root_pid = root_pid
        self.pg_dsn, self.db_name = pg_dsn, db_name
        self.last: dict[int, tuple[str, int]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pg = None
        if pg_dsn:
            import psycopg

            self.pg = psycopg.connect(pg_dsn, autocommit=True)
            self.own = self.pg.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def pids(self) -> dict[int, str]:
        kids = children_map()
        found = {}
        for pid in tree(self.root_pid, kids):
            kind = kind_of(pid)
            if kind:
                found[pid] = kind
        if self.pg is not None:
            rows = self.pg.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                [self.db_name, self.own]).fetchall()
            found.update({r[0]: "postgres" for r in rows})
        return found

    def sample(self) -> None:
        for pid, kind in self.pids().items():
            ticks = cpu_ticks(pid)
            if ticks is not None:
                with self.lock:
                    self.last[pid] = (kind, ticks)

    def loop(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - a process that vanished mid-read
                print(f"cpu sampler: {exc}", file=sys.stderr)

    def snapshot(self) -> dict[int, tuple[str, int]]:
        self.sample()
        with self.lock:
            return dict(self.last)

    def pg_bytes(self) -> dict[str, int]:
        """Size of this database, and the cluster's WAL position (shared with any other
        database on the server: an upper bound for this one's WAL)."""
        if self.pg is None:
            return {}
        size, wal = self.pg.execute(
            "SELECT pg_database_size(%s), pg_current_wal_lsn() - '0/0'::pg_lsn",
            [self.db_name]).fetchone()
        return {"db": int(size), "wal": int(wal)}

    def statements_reset(self) -> None:
        for sql in pgstatements.RESET:
            self.pg.execute(sql)

    def statements(self) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        with self.pg.cursor() as cursor:  # READ names the database of the connection
            cursor.execute(pgstatements.READ)
            pgstatements.add(found, cursor.fetchall())
        return found

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        if self.pg is not None:
            self.pg.close()


def cpu_ms_by_kind(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]
                   ) -> dict[str, float]:
    totals: dict[str, float] = {}
    for pid, (kind, ticks) in after.items():
        base = before.get(pid, (kind, 0))[1]  # a process born in the window counts from 0
        totals[kind] = totals.get(kind, 0.0) + (ticks - base) * TICK_MS
    return totals


# -- the database and the served processes ----------------------------------------------------


def fresh_postgres(url: str) -> tuple[str, str]:
    import psycopg
    from psycopg import sql

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url, name


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout


def django_side(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([PY, "-m", "bench.load.djangoside", *args], cwd=ROOT, env=env,
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_profile(args: argparse.Namespace, env: dict[str, str], log: Path) -> subprocess.Popen:
    out = log.open("wb")
    if args.target == "runserver":  # as bin/demo serves (before this issue)
        script = (
            f"{PY} manage.py runserver --noreload 127.0.0.1:{args.port} & "
            + "".join(f"{PY} manage.py stepwise_worker --interval 0.2 --no-reload & "
                      for _ in range(args.workers))
            + f"{PY} manage.py resume_stalled --mark-only --watch 5 & wait"
        )
        return subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return subprocess.Popen(
        [str(BIN / "honcho"), "-f", "Procfile", "start", "--no-colour", "-c",
         f"web=1,worker={args.workers},sweeper=1,claims=1"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def server_5xx(log: Path) -> int:
    """Responses of status 500-599 in the profile's log (Django logs each one it answers)."""
    pattern = re.compile(r'"status_code": 5\d\d\b')
    with log.open(errors="replace") as lines:
        return sum(1 for line in lines if pattern.search(line))


def wait_http(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the server did not answer on port {port} within {timeout:.0f} s")


def stop_profile(proc: subprocess.Popen) -> float:
    began = time.monotonic()
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    return time.monotonic() - began


# -- the run --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return round(sorted(values)[k], 1)


def read_stats(path: Path) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    if not path.exists():
        return kinds
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                continue
            kinds[row["Name"]] = {
                "n": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "p50": float(row["50%"]), "p95": float(row["95%"]), "p99": float(row["99%"]),
            }
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["pg", "sqlite"], default="pg")
    parser.add_argument("--target", choices=["profile", "runserver"], default="profile")
    parser.add_argument("--server", choices=["uvicorn", "granian", "daphne"], default="uvicorn")
    parser.add_argument("--servers", type=int, default=1, help="server processes (M)")
    parser.add_argument("--workers", type=int, default=1, help="task workers (N)")
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--watchers", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=300, help="decisions in the window")
    parser.add_argument("--backlog", type=int, default=0,
                        help="runs waiting for review at the start (default 3 x reviewers)")
    parser.add_argument("--api-share", type=float, default=0.25,
                        help="share of reviewers deciding through the HTTP API")
    parser.add_argument("--own-only", action="store_true",
                        help="reviewers only take their own share of the inbox (no races)")
    parser.add_argument("--help-after", type=float, default=2.0, metavar="SECONDS",
                        help="a reviewer with none of its own reviews takes a colleague's that "
                        "has waited this long (0: any, at once: the twelfth round's model)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds each reviewer waits between requests")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="decisions per second the reviewers make together, evenly spaced "
                        "(default 0: as fast as the server answers)")
    parser.add_argument("--port", type=int, default=8351)
    parser.add_argument("--database-url", default=os.environ.get(
        "LOAD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stepwise_serve_load"))
    parser.add_argument("--redis-url", default=os.environ.get(
        "LOAD_REDIS_URL", "redis://127.0.0.1:6379/5"))
    parser.add_argument("--py-spy", type=float, default=0.0, metavar="SECONDS",
                        help="also record a py-spy profile of one server process")
    parser.add_argument("--statements", type=Path, metavar="JSON",
                        help="write pg_stat_statements of the window, per cycle, here (the "
                        "server must load pg_stat_statements, with track_planning for plans)")
    parser.add_argument("--max-seconds", type=float, default=300,
                        help="close the window after this long even if --cycles were not made")
    parser.add_argument("--keep", action="store_true", help="keep the state directory")
    parser.add_argument("--out", type=Path, help="append the result (JSON line) here")
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    # a SIGTERM (a timeout, Ctrl-C) still stops the served processes (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    state = Path(tempfile.mkdtemp(prefix="stepwise-load-"))
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTEST_VERSION", "DATABASE_URL", "SQLITE_PATH", "REDIS_URL"}}
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "SECRET_KEY": "load-test-secret-key-" + "x" * 40,
        "DEBUG": "1" if args.target == "runserver" else "0",
        "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": args.redis_url,
        "WEB_CONCURRENCY": str(args.servers), "HTTP_PORT": str(args.port),
        "STEPWISE_SERVER": args.server, "PYTHONUNBUFFERED": "1",
        # the reviewers log in once each, from one address: no lockouts in a load test
        "AXES_FAILURE_LIMIT": "1000",
    })
    db_name = None
    if args.db == "pg":
        env["DATABASE_URL"], db_name = fresh_postgres(args.database_url)
        if args.target == "runserver":
            env["STEPWISE_DB_POOL_MAX"] = "0"  # as before this issue: a connection per thread
    else:
        env["SQLITE_PATH"] = str(state / "load.sqlite3")
        if args.target == "profile":
            env["SQLITE_BUSY_TIMEOUT"] = "60"  # as bin/serve sets it for SQLite
    # enough waiting reviews that each reviewer has a row of the inbox to itself
    backlog = args.backlog or 3 * args.reviewers

    manage(env, "migrate", "--noinput", "-v", "0")
    manifest = ROOT / "var" / "staticfiles" / "staticfiles.json"
    if args.target == "profile" and not manifest.exists():
        manage(env, "collectstatic", "--noinput", "-v", "0")
    django_side(env, "seed", str(args.reviewers), str(backlog), str(state / "creds.json"))

    # a server left on the port would answer instead of ours and spoil the run unnoticed
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", args.port)) == 0:
            raise SystemExit(f"port {args.port} is already in use: stop that server or --port")
    proc = start_profile(args, env, state / "profile.log")
    sampler = None
    try:
        wait_http(args.port)
        sampler = CpuSampler(proc.pid, env.get("DATABASE_URL"), db_name)
        starters = max(2, args.reviewers // 5)
        users = args.reviewers + starters + args.watchers
        lenv = {**env, "LOAD_CREDENTIALS": str(state / "creds.json"),
                "LOAD_STATE_DIR": str(state), "LOAD_TARGET": str(args.cycles),
                "LOAD_API_SHARE": str(args.api_share), "LOAD_THINK": str(args.think),
                "LOAD_RATE": str(args.rate),
                "LOAD_REVIEWERS": str(args.reviewers), "LOAD_WATCHERS": str(args.watchers),
                "LOAD_STARTERS": str(starters), "LOAD_OWN_ONLY": "1" if args.own_only else "0",
                "LOAD_HELP_AFTER": str(args.help_after)}
        locust = subprocess.Popen(
            [str(BIN / "locust"), "-f", str(ROOT / "bench/load/locustfile.py"), "--headless",
             "-u", str(users), "-r", str(users), "--host", f"http://127.0.0.1:{args.port}",
             "--csv", str(state / "stats"), "--only-summary", "--run-time", "15m",
             "--loglevel", "WARNING"],
            cwd=ROOT, env=lenv, stdout=(state / "locust.log").open("wb"),
            stderr=subprocess.STDOUT)
        while not (state / "ready").exists():
            if locust.poll() is not None:
                raise SystemExit(f"locust stopped early: see {state / 'locust.log'}")
            time.sleep(0.05)
        t0, wall0 = time.monotonic(), datetime.now(UTC)
        if args.statements:
            sampler.statements_reset()
        cpu0 = sampler.snapshot()
        client0 = cpu_ticks(locust.pid) or 0
        bytes0 = sampler.pg_bytes()
        spies = []
        if args.py_spy:  # one server process and one worker, sampled 50 times a second
            for kind in ("server", "worker"):
                pids = [p for p, k in cpu0.items() if k[0] == kind]
                # --gil: only the thread running Python code. py-spy's own idle detection
                # does not work on this machine kind (it kept threads blocked in a socket
                # read or a libpq call, about four samples in five), so without it a
                # profile showed waiting on Redis and PostgreSQL as CPU.
                spies.append(subprocess.Popen(
                    [str(BIN / "py-spy"), "record", "--gil", "-d", str(int(args.py_spy)),
                     "-r", "50",
                     "-f", "raw", "-o", str(state / f"profile-{kind}.txt"), "-p",
                     str(max(pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + args.max_seconds
        while not (state / "done").exists():
            if locust.poll() is not None:
                raise SystemExit(f"locust stopped early: see {state / 'locust.log'}")
            if time.monotonic() > deadline:  # report what was done; `cycles` says how much
                print(f"window closed after {args.max_seconds:.0f} s before --cycles decisions",
                      file=sys.stderr)
                (state / "done").write_text("timeout")
                break
            time.sleep(0.05)
        t1, wall1 = time.monotonic(), datetime.now(UTC)
        cpu1 = sampler.snapshot()
        client1 = cpu_ticks(locust.pid) or client0
        bytes1 = sampler.pg_bytes()
        statements = sampler.statements() if args.statements else {}
        try:
            locust.wait(timeout=60)
        except subprocess.TimeoutExpired:
            locust.terminate()
            locust.wait(timeout=10)
        for spy in spies:
            spy.wait(timeout=args.py_spy + 30)
        # let the runs decided in the window finish before reading their latencies
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if django_side(env, "count")["active_runs"] == 0:
                break
            time.sleep(0.5)
        db = django_side(env, "report", wall0.isoformat(), wall1.isoformat())
    finally:
        if sampler is not None:
            sampler.close()
        shutdown_s = stop_profile(proc)

    counts = json.loads((state / "counts.json").read_text())
    cycles = db["decisions"]
    seconds = t1 - t0
    cpu = {k: round(v / max(cycles, 1), 1) for k, v in cpu_ms_by_kind(cpu0, cpu1).items()}
    cpu["total"] = round(sum(cpu.values()), 1)
    lat = db.pop("decision_to_finished_ms")
    result = {
        "label": args.label, "when": wall0.isoformat(timespec="seconds"),
        "db": args.db, "target": args.target, "server": args.server,
        "servers": args.servers, "workers": args.workers, "reviewers": args.reviewers,
        "think_s": args.think, "own_only": args.own_only, "help_after_s": args.help_after,
        "rate": args.rate,
        "cycles": cycles, "window_s": round(seconds, 2),
        "decisions_per_s": round(cycles / seconds, 2),
        "cpu_ms_per_cycle": cpu,
        # not in the total: the simulated users share this machine's two cores with the
        # profile, so their CPU bounds the decisions per second a run can show
        "load_client_cpu_ms_per_cycle": round((client1 - client0) * TICK_MS / max(cycles, 1), 1),
        # HTTP requests the server answered per decision in the window (lost races and followed
        # redirects included; websocket messages not)
        "requests_per_cycle": round(counts["window_requests"] / max(cycles, 1), 2),
        "decision_to_finished_ms": {"p50": percentile(lat, 50), "p95": percentile(lat, 95),
                                    "p99": percentile(lat, 99), "n": len(lat)},
        "requests": read_stats(state / "stats_stats.csv"),
        "http_5xx": counts["status"].get("5xx", 0),
        # what the servers answered 5xx, from their own log: a client that gave up first
        # (status 0) never sees the 500 of a request that waited out a lock
        "server_5xx": server_5xx(state / "profile.log"),
        "status_counts": counts["status"], "conflicts": counts["conflicts"],
        "ws_messages": counts["ws_messages"],
        "accounting": {k: db[k] for k in ("finished", "run_statuses", "runs_resumed_twice",
                                          "runs_not_ended", "failed_runs")},
        "shutdown_s": round(shutdown_s, 2),
        # bytes the database grew by, and WAL written by the whole cluster, per cycle
        "pg_bytes_per_cycle": {k: round((bytes1[k] - bytes0[k]) / max(cycles, 1))
                               for k in bytes0},
        "loadavg_1m": os.getloadavg()[0],
    }
    if args.statements:
        found = pgstatements.per_cycle(statements, cycles)
        result["statements_per_cycle"] = found["per_cycle"]
        args.statements.write_text(json.dumps(found, indent=1))
    if args.py_spy:
        result["py_spy_profiles"] = sorted(str(p) for p in state.glob("profile-*.txt"))
    print(json.dumps(result, indent=1))
    if args.out:
        with args.out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
    if not args.keep and not args.py_spy:
        shutil.rmtree(state, ignore_errors=True)
    else:
        print(f"state kept in {state}", file=sys.stderr)


if __name__ == "__main__":
    main()
