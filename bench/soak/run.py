"""Put the soak together: cluster, processes, load, chaos, then the accounting."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.soak import chaos, driver, processes
from bench.soak.cluster import ThrowawayPostgres, spare_port
from bench.soak.django_side import PASSWORD


@dataclass
class SoakConfig:
    cycles: int = 300
    reviewers: int = 8
    servers: int = 2
    workers: int = 2
    kill_every: tuple[float, float] = (2.0, 5.0)
    # progress marks by which one more worker has been killed, whatever the clock says
    kill_at: tuple[float, ...] = (0.2, 0.5, 0.8)
    server_every: float = 20.0
    pg_at: float = 0.4
    pg_every: float | None = None
    backlog: int = 20
    server_cmd: str = processes.DEFAULT_SERVER_CMD
    settle_seconds: float = 180.0


def _server_words(cmd: str) -> str:
    """What serves, for the log: `manage.py runserver`, `bin/serve-web`, ..."""
    words = [w for w in cmd.split() if "=" not in w and w not in ("env", "{python}")]
    return " ".join(words[:2])


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_soak(config: SoakConfig) -> dict[str, Any]:
    pg = ThrowawayPostgres(max_connections=300)
    logdir = Path(tempfile.mkdtemp(prefix="stepwise-soak-logs-"))
    procs: list[processes.Proc] = []
    started = time.monotonic()
    try:
        log(f"PostgreSQL {pg.bin.parent.name} throwaway cluster on port {pg.port} ({pg.dir})")
        pg.start()
        env = processes.app_env(pg.url)
        processes.manage(env, "migrate", "--noinput")
        manifest = processes.ROOT / "var" / "staticfiles" / "staticfiles.json"
        if "DEBUG=0" in config.server_cmd and not manifest.exists():
            processes.manage(env, "collectstatic", "--noinput", "-v", "0")  # WhiteNoise's
        setup = json.loads(subprocess.run(
            [sys.executable, "-m", "bench.soak.django_side", "setup", str(config.reviewers)],
            cwd=processes.ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout)
        ports = [spare_port() for _ in range(config.servers)]
        servers = [processes.server(i, port, env, logdir, config.server_cmd)
                   for i, port in enumerate(ports)]
        workers = [processes.worker(i, env, logdir) for i in range(config.workers)]
        sweeper = processes.sweeper(env, logdir)
        procs = [*servers, *workers, sweeper]
        for proc in procs:
            proc.start()
        for port in ports:
            processes.wait_until_serving(port)
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        log(f"{config.servers} server(s) ({_server_words(config.server_cmd)}), "
            f"{config.workers} worker(s), sweeper --auto; {config.reviewers} reviewers, "
            f"{config.cycles} review cycles; logs in {logdir}")

        tally = driver.Tally()
        stop_load, stop_chaos = threading.Event(), threading.Event()
        prefix = f"soak-{uuid.uuid4().hex[:8]}"
        load = [threading.Thread(target=driver.starter, daemon=True, args=(
            setup["token"], prefix, config.cycles, config.backlog, bases, tally, stop_load))]
        load += [threading.Thread(target=driver.reviewer, daemon=True, args=(
            f"soak-reviewer-{n}", PASSWORD, bases, tally, stop_load))
            for n in range(config.reviewers)]
        for thread in load:
            thread.start()

        def progress() -> float:
            with tally.lock:
                return len(tally.accepted | tally.already) / config.cycles

        chaos_result: Counter[str] = Counter()
        monkey = threading.Thread(target=lambda: chaos_result.update(chaos.monkey(
            workers=workers, servers=servers, restart_pg=pg.restart, stop=stop_chaos,
            progress=progress, kill_every=config.kill_every,
            server_every=config.server_every, pg_at=config.pg_at, pg_every=config.pg_every,
            kill_at=config.kill_at, log=log,
        )), daemon=True)
        monkey.start()

        last_report = 0.0
        last_progress, progressed_at = 0.0, time.monotonic()
        while progress() < 1.0:
            time.sleep(0.5)
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                log(f"{len(tally.accepted | tally.already)}/{config.cycles} decided, "
                    f"{len(tally.started)} started, requests {dict(tally.requests)}")
            if progress() != last_progress:
                last_progress, progressed_at = progress(), time.monotonic()
            elif time.monotonic() - progressed_at > 2 * config.settle_seconds:
                # a thread that never reaches its review: stop the load and account, so the
                # counts (and `stuck`) say where it stands, instead of waiting for a timeout
                log(f"giving up on the load: no decision for {2 * config.settle_seconds:g}s")
                break
        load_seconds = time.monotonic() - started
        stop_chaos.set()
        monkey.join(timeout=60)
        # no more chaos: the runs left in flight must now finish by themselves
        counts = settle(env, prefix, config)
        stop_load.set()
        for thread in load:
            thread.join(timeout=30)
        counts["chaos"] = dict(chaos_result)
        counts["client"] = {
            "decisions_accepted": len(tally.accepted), "already_decided_409": len(tally.already),
            **dict(tally.requests),
        }
        lost = sorted(tally.accepted - set(counts.pop("decided_review_ids")))
        counts["decisions_lost"] = len(lost)
        counts["threads_started_by_client"] = len(tally.started)
        # started (the server said 201 or 409) but not in the database: a lost commit
        counts["threads_missing"] = sorted(tally.started - set(counts.pop("thread_ids")))
        counts["load_seconds"] = round(load_seconds, 1)
        counts["logs"] = str(logdir)
        for entry in counts.get("stuck", []):
            log(f"not done: {json.dumps(entry, indent=1)}")
        if counts["threads_missing"]:
            log(f"started by the client but not in the database: {counts['threads_missing']}")
        return counts
    finally:
        for proc in procs:
            proc.stop(timeout=5)
        pg.stop()


def settle(env: dict[str, str], prefix: str, config: SoakConfig) -> dict[str, Any]:
    """Account until every thread is done, or `settle_seconds` pass (then the last counts)."""
    deadline = time.monotonic() + config.settle_seconds
    while True:
        counts = account(env, prefix)
        if counts["threads_done"] == counts["threads"] == config.cycles and not counts[
                "reviews_open"] or time.monotonic() > deadline:
            return counts
        time.sleep(2)


def account(env: dict[str, str], prefix: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.soak.django_side", "account", prefix],
                         cwd=processes.ROOT, env=env, capture_output=True, text=True, timeout=120)
    if out.returncode:
        raise RuntimeError(f"accounting failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout)


def expected(config: SoakConfig) -> dict[str, int]:
    n = config.cycles
    return {
        "threads": n, "threads_done": n, "threads_started_by_client": n, "runs_unfinished": 0,
        "reviews": n, "reviews_open": 0, "reviews_decided": n, "decisions": n,
        "decisions_lost": 0, "decisions_applied": n, "decisions_applied_twice": 0,
        "payouts": n, "payouts_duplicated": 0, "needs_ops": 0,
    }


def judge(counts: dict[str, Any], config: SoakConfig) -> list[str]:
    """The counts that differ from what they must be (empty: the soak passed)."""
    return [f"{name}: {counts.get(name)} (expected {want})"
            for name, want in expected(config).items() if counts.get(name) != want]
