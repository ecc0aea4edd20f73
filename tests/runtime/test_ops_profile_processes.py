"""The serving profile's processes keep themselves alive, and count into one metrics directory.

An ops trial on PostgreSQL: SIGKILL to the sweeper (`resume_stalled`) or the claims sweeper
(`sweep_reviews`), bare `exec python manage.py ...` lines in the Procfile, made honcho stop the
whole `bin/serve` profile (web, workers) and nothing started it again; the same for the
uvicorn parent. And with several uvicorn processes `/metrics` alternated between processes'
counters while no worker's or sweeper's ever appeared: bin/serve did not set
PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from runtime_helpers import ROOT, descendants, free_port, stop_tree, subprocess_env, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

VENV_BIN = Path(sys.executable).parent


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def profile_env() -> dict[str, str]:
    env = subprocess_env()
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "HTTP_PORT": str(free_port()), "WEB_CONCURRENCY": "2",
        "KEEP_ALIVE_PAUSE": "0.2", "LOG_LEVEL": "INFO",
    })
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def named(root: int, text: str) -> list[int]:
    """The processes below `root` whose command line contains `text` (and that live)."""
    return [pid for pid in descendants(root) if text in cmdline(pid) and alive(pid)]


def the_one(root: int, text: str, timeout: float = 60) -> int:
    pids = wait_for(lambda: (found := named(root, text)) and len(found) == 1 and found,
                    timeout=timeout, what=f"one process running {text!r}")
    return int(pids[0])


def healthy(port: str) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def honcho_profile(profile_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Every process of ./Procfile under honcho, as bin/serve starts them (after its setup)."""
    log = tmp_path / "honcho.log"
    process = subprocess.Popen(
        [str(VENV_BIN / "honcho"), "-f", "Procfile", "start", "--no-colour",
         "-c", "web=1,worker=1,notify=1,sweeper=1,claims=1"],
        cwd=ROOT, env=profile_env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield {"process": process, "log": log, "port": profile_env["HTTP_PORT"]}
    finally:
        stop_tree(process)


def test_a_killed_sweeper_claims_sweeper_or_web_server_comes_back_and_the_rest_stays_up(
    honcho_profile: dict[str, Any],
) -> None:
    honcho, log, port = honcho_profile["process"], honcho_profile["log"], honcho_profile["port"]

    def output() -> str:
        return log.read_text(errors="replace")[-4000:]

    try:
        sweeper = the_one(honcho.pid, "manage.py resume_stalled")
        claims = the_one(honcho.pid, "manage.py sweep_reviews")
        # one worker pool per task queue: a slow webhook receiver never holds up a run
        worker = the_one(honcho.pid, "manage.py stepwise_worker --queue-name default")
        notifier = the_one(honcho.pid, "manage.py stepwise_worker --queue-name notify")
        assert len(named(honcho.pid, "manage.py stepwise_worker")) == 2
        web = the_one(honcho.pid, "uvicorn config.asgi")
        wait_for(lambda: healthy(port), timeout=60, what="the web server to answer")
        loops = {pid: cmdline(pid) for pid in descendants(honcho.pid) if "bash" in cmdline(pid)}
        # no loop names the command it runs: `pkill -f resume_stalled` kills only the sweeper
        assert not [c for c in loops.values() if "resume_stalled" in c or "sweep_reviews" in c]

        os.kill(sweeper, signal.SIGKILL)  # as an operator's `pkill -9 -f resume_stalled`
        again = wait_for(lambda: [p for p in named(honcho.pid, "manage.py resume_stalled")
                                  if p != sweeper], timeout=60, what="the sweeper back")
        assert honcho.poll() is None, "honcho stopped the profile"
        os.kill(claims, signal.SIGKILL)
        wait_for(lambda: [p for p in named(honcho.pid, "manage.py sweep_reviews") if p != claims],
                 timeout=60, what="the claims sweeper back")
        # the others were not stopped: the same processes still run
        assert honcho.poll() is None
        assert alive(worker) and alive(notifier) and alive(web)
        assert all(alive(pid) for pid in loops)
        assert healthy(port)
        text = log.read_text(errors="replace")
        assert "sweeper exited (status 137)" in text and "claims exited (status 137)" in text
        assert "stopped (rc=" not in text, "a process of the profile stopped"

        # the uvicorn parent killed: its server processes go on holding the port, so they are
        # stopped before a new parent starts and answers
        os.kill(web, signal.SIGKILL)
        wait_for(lambda: [p for p in named(honcho.pid, "uvicorn config.asgi") if p != web],
                 timeout=60, what="a new web server")
        wait_for(lambda: healthy(port), timeout=60, what="the new web server to answer")
        assert honcho.poll() is None and alive(worker) and all(alive(p) for p in again)
        assert "web exited (status 137)" in log.read_text(errors="replace")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- honcho:\n{output()}") from None


def test_keep_alive_backs_off_from_a_crash_loop_and_says_so(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    script = (f"source {ROOT}/bin/_common.sh; KEEP_ALIVE_PAUSE=0.1 KEEP_ALIVE_MAX_PAUSE=0.8 "
              f"keep_alive sweeper bash -c 'date +%s.%N >> {starts}; exit 3'")
    proc = subprocess.Popen(["bash", "-c", script], stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_for(lambda: starts.exists() and len(starts.read_text().split()) >= 6, timeout=30,
                 what="six starts")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    times = [float(t) for t in starts.read_text().split()]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # 0.1, 0.2, 0.4, 0.8, 0.8 (capped): the pauses grow instead of a busy loop
    assert gaps[3] > 0.6 and gaps[4] > 0.6, gaps
    assert gaps[0] < 0.6, gaps
    assert "sweeper exited (status 3)" in err
    assert re.search(r"crash loop \(\d+ exits in a row within 60 s of starting\)", err), err


def test_bin_serve_counts_every_process_into_one_metrics_directory(
    profile_env: dict[str, str], tmp_path: Path,
) -> None:
    """bin/serve as run in production (DEBUG off), with PROMETHEUS_MULTIPROC_DIR set: honoured,
    emptied at start, and what a worker counts is served by every uvicorn process."""
    import secrets

    env = dict(profile_env)
    env.pop("PYTEST_VERSION", None)  # production settings
    env.update({
        "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
        "STEPWISE_WORKERS": "1", "STEPWISE_SKIP_MIGRATE": "1",
        # a beat every 0.5 s: the worker's heartbeat counter moves within the test
        "STEPWISE_LEASE_SECONDS": "1.5",
    })
    env.pop("REDIS_URL", None)
    prom = tmp_path / "prom"
    prom.mkdir()
    (prom / "counter_999999.db").write_bytes(b"left over from the last start")  # unreadable
    (prom / "README").write_text("not ours")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    log = tmp_path / "serve.log"
    serve = subprocess.Popen([str(ROOT / "bin" / "serve")], cwd=ROOT, env=env,
                             stdout=log.open("wb"), stderr=subprocess.STDOUT,
                             start_new_session=True)
    port = env["HTTP_PORT"]
    try:
        def scrape() -> str | None:
            if serve.poll() is not None:
                raise AssertionError(f"bin/serve exited:\n{log.read_text()[-4000:]}")
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            except httpx.HTTPError:
                return None
            assert answer.status_code == 200, answer.text[:2000]
            return answer.text

        # the first start on a fresh clone collects (hashes, compresses) the static files
        wait_for(scrape, timeout=400, what="bin/serve to answer /metrics")
        assert not (prom / "counter_999999.db").exists() and (prom / "README").exists()
        sweeper = the_one(serve.pid, "manage.py resume_stalled")
        worker = the_one(serve.pid, "manage.py stepwise_worker --queue-name default")
        # webhook deliveries and e-mails have workers of their own (their queue: `notify`)
        notifier = the_one(serve.pid, "manage.py stepwise_worker --queue-name notify")

        def beats(text: str) -> float:
            found = re.search(r"^stepwise_worker_heartbeats_total\s+(\S+)$", text, re.M)
            return float(found.group(1)) if found else 0.0

        wait_for(lambda: beats(scrape() or "") >= 1, timeout=60, what="worker beats counted")
        # every scrape, whichever uvicorn process answers, has the worker's counts
        assert all(beats(scrape() or "") >= 1 for _ in range(8))
        # and the sweeper's and worker's samples are in the directory /metrics adds up
        files = {p.name for p in prom.iterdir()}
        assert any(str(sweeper) in name for name in files), files
        assert any(str(worker) in name for name in files), files
        assert any(str(notifier) in name for name in files), files
    finally:
        stop_tree(serve)
    assert "metrics in " + str(prom) in log.read_text()
    # production logs are JSON lines, uvicorn's own included, each timed in UTC with its offset
    # (uvicorn's were plain text and the time had no zone: an ops trial)
    web = [line.split("| ", 1)[1] for line in log.read_text().splitlines()
           if re.match(r"^\S+ web\.1\s+\| ", line)]
    assert any("Started server process" in line for line in web), web
    for line in web:
        if line.startswith("==>"):  # bin/_common.sh's own notes (keep_alive)
            continue
        record = json.loads(line)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", record["time"])
        assert "color_message" not in record


def test_the_metrics_directory_defaults_to_var_prometheus_and_only_db_files_go(
    tmp_path: Path,
) -> None:
    root = tmp_path / "checkout"
    (root / "var" / "prometheus").mkdir(parents=True)
    (root / "var" / "prometheus" / "histogram_12.db").write_text("stale")
    (root / "var" / "prometheus" / "keep.txt").write_text("x")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    def run(extra: str) -> str:
        return subprocess.run(
            ["bash", "-c", f"source {ROOT}/bin/_common.sh; STEPWISE_ROOT={root}; {extra} "
             "prepare_metrics_dir; echo \"$PROMETHEUS_MULTIPROC_DIR\""],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()

    assert run("") == f"{root}/var/prometheus"
    assert sorted(p.name for p in (root / "var" / "prometheus").iterdir()) == ["keep.txt"]
    assert run(f"export PROMETHEUS_MULTIPROC_DIR={tmp_path}/mine;") == f"{tmp_path}/mine"
    assert (tmp_path / "mine").is_dir()
    assert "prepare_metrics_dir" in (ROOT / "bin" / "serve").read_text()
