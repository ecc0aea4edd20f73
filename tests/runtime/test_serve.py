"""The serving profile (`bin/serve`: uvicorn, task workers and sweepers under honcho) as real
processes on the test database: it serves a logged-in page and a websocket, and on SIGTERM
it stops cleanly, its worker handing the run it is executing back at a superstep boundary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from runtime_helpers import (
    ROOT,
    descendants,
    free_port,
    log_lines,
    stop_tree,
    subprocess_env,
    wait_for,
)
from websockets.sync.client import connect as ws_connect

from approvals.roles import ensure_roles
from orchestration.runtime.models import Event, Run
from orchestration.runtime.runs import start_thread

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "serve-test-password-7"  # noqa: S105


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def production_overrides(port: int) -> dict[str, str]:
    """Production settings (DEBUG off, a real key) over plain HTTP on localhost."""
    return {
        "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
        "HTTP_PORT": str(port), "WEB_CONCURRENCY": "2", "STEPWISE_WORKERS": "1",
        "STEPWISE_SKIP_MIGRATE": "1", "LOG_LEVEL": "INFO",
        # a lease longer than the test: only the hand-back can free the run quickly
        "STEPWISE_LEASE_SECONDS": "60",
    }


@contextlib.contextmanager
def serving(
    script: str, env: dict[str, str], log: Path, port: int, *, probe: str, timeout: float
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`bin/<script>` started with `env`, once `probe` answers 200; stopped after."""
    process = subprocess.Popen(
        [str(ROOT / "bin" / script)], cwd=ROOT, env=env, stdout=log.open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"bin/{script} exited early:\n{log.read_text()}")
        try:
            return httpx.get(f"{base}{probe}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=timeout, what=f"bin/{script} to answer")
        yield process, base
    finally:
        stop_tree(process)


@pytest.fixture
def served(tmp_path: Path) -> Any:
    port = free_port()
    env = subprocess_env()
    env.pop("PYTEST_VERSION", None)  # the served processes run with production settings
    env.update(production_overrides(port))
    if redis_up():  # the live pages' pushes cross processes through Redis, as in production
        env["REDIS_URL"] = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/5"
    log = tmp_path / "serve.log"
    # the first start on a fresh clone collects (hashes, compresses) the static files
    with serving("serve", env, log, port, probe="/accounts/login/", timeout=400) as (
        process, base
    ):
        yield {"process": process, "base": base, "log": log, "port": port}


def log_in(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=20, follow_redirects=True)
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None, page.text[:500]
    response = client.post(
        "/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token[1]},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert response.status_code == 200
    assert response.url.path == "/", "the login did not land on the inbox"
    return client


def test_bin_serve_serves_pages_and_websockets_and_hands_back_a_run_on_sigterm(
    served: dict[str, Any], tmp_path: Path
) -> None:
    ensure_roles(Group, Permission)  # an earlier transactional test may have flushed them
    user = get_user_model().objects.create_user("sam", password=PASSWORD)
    user.groups.add(Group.objects.get(name="reviewer"))
    client = log_in(served["base"], "sam")

    inbox = client.get("/")
    assert inbox.status_code == 200 and "sam" in inbox.text
    # static files come from WhiteNoise with the manifest's hashed names, cached for ever
    css = re.search(r'href="(/static/[^"]+\.css)"', inbox.text)
    assert css is not None
    static = client.get(css[1])
    assert static.status_code == 200 and "max-age=315360000" in static.headers["cache-control"]

    log, gate = tmp_path / "nodes.log", tmp_path / "gate"
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    ws_url = served["base"].replace("http", "ws", 1) + "/ws/inbox/"
    with ws_connect(ws_url, additional_headers={"Cookie": cookie, "Origin": served["base"]},
                    open_timeout=20) as ws:
        # A live page sits idle for a while: longer than the channel layer's 5 s blocking
        # read (redis-py 8's default socket timeout closed such sockets after 5 s).
        time.sleep(7)
        run = start_thread("steps", {"log": str(log), "gate": str(gate)}, user=None)
        # the served worker picks the run up; its events reach this socket
        pushed = ws.recv(timeout=30)
    assert pushed, "the socket closed without a push"

    wait_for(lambda: "slow:start" in log_lines(log), timeout=60, what="the slow node to start")
    os.kill(served["process"].pid, signal.SIGTERM)  # bin/serve is honcho (exec)
    # The gate opens once the worker has the signal, not after a fixed pause: honcho kills
    # what has not stopped 5 s after its SIGTERM, and on a loaded machine a fixed 0.5 s both
    # ate into that grace and could open the gate before the signal arrived (then `last`
    # would rightly start).
    try:
        wait_for(lambda: "shutting down gracefully" in served["log"].read_text(), timeout=5,
                 what="the worker to receive SIGTERM")
    except AssertionError as exc:  # say what the profile did meanwhile (seen once under load)
        raise AssertionError(f"{exc}\n{served['log'].read_text()[-4000:]}") from None
    gate.touch()  # the superstep in progress ends; the worker must not start the next one
    served["process"].wait(timeout=30)
    output = served["log"].read_text()

    assert "handed back" in output, output[-3000:]
    for kind in ("web", "worker", "sweeper", "claims"):
        assert re.search(rf"{kind}\.1 stopped", output), f"{kind} did not stop:\n{output[-3000:]}"
    assert "SIGKILL" not in output and "rc=-9" not in output, "a process had to be killed"
    run.refresh_from_db()
    # given back, not left running until its 60 s lease expires; queued for the next worker
    assert run.status == Run.Status.QUEUED and run.lease_token == ""
    kinds = list(Event.objects.filter(run=run).order_by("pk").values_list("kind", flat=True))
    assert kinds[-2:] == ["run_handed_back", "run_requeued"], kinds
    assert log_lines(log) == ["first", "slow:start", "slow:end"]  # `last` never started

    # the next worker continues from the checkpoint after `slow`: nothing runs twice
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "stepwise_worker", "--interval", "0.1",
         "--no-startup-delay", "--no-reload"],
        cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED,
                 timeout=60, what="the handed-back run to finish")
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert log_lines(log) == ["first", "slow:start", "slow:end", "last"]


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_worker_killed_under_bin_serve_is_started_again_and_the_site_stays_up(
    served: dict[str, Any], tmp_path: Path
) -> None:
    """honcho stops every process once one exits: without a loop that starts it again a
    SIGKILLed worker took the web server down with it (found by hand, killing a worker of a
    served profile). Killed as an operator does, `pkill -9 -f stepwise_worker`: every process
    whose command line names the worker. When that loop's own command line named it too
    (bin/respawn's arguments), the loop died with the worker and took the profile down all
    the same (found by hand again)."""

    def named_worker() -> list[int]:
        return [pid for pid in descendants(served["process"].pid)
                if "stepwise_worker" in cmdline(pid)]

    # the worker of runs and the worker of notifications (queue `notify`)
    wait_for(lambda: len(named_worker()) == 2, timeout=60, what="the served workers")
    killed = named_worker()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    # one read of the process list per check
    wait_for(lambda: len([pid for pid in named_worker() if pid not in killed]) == 2,
             timeout=60, what="both workers started again")

    assert served["process"].poll() is None, served["log"].read_text()[-3000:]
    assert httpx.get(f"{served['base']}/healthz", timeout=10).status_code == 200
    log, gate = tmp_path / "nodes.log", tmp_path / "gate"
    gate.touch()
    run = start_thread("steps", {"log": str(log), "gate": str(gate)}, user=None)
    wait_for(lambda: Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED,
             timeout=60, what="the new worker to run a thread to its end")
    assert log_lines(log) == ["first", "slow:start", "slow:end", "last"]
    assert "worker exited (status 137)" in served["log"].read_text()


def test_serving_settings_bound_postgresql_connections_and_pass_check_deploy(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTEST_VERSION", "DEBUG", "SQLITE_PATH", "SECRET_KEY"}}
    env.update({
        "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "stepwise.example.com",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/stepwise_never_opened",
        "REDIS_URL": "redis://127.0.0.1:6379/5", "STEPWISE_DB_POOL_MAX": "6",
    })
    show = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "d = s.DATABASES['default']; print(json.dumps({'pool': d['OPTIONS'].get('pool'), "
        "'age': d['CONN_MAX_AGE'], 'debug': s.DEBUG, 'sessions': s.SESSION_ENGINE}, "
        "default=lambda o: o.__qualname__))"
    )
    result = subprocess.run([sys.executable, "-c", show], cwd=ROOT, capture_output=True,
                            text=True, timeout=120,
                            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    # a pool of at most 6 per process, and no persistent connection per request thread
    assert shown["pool"]["max_size"] == 6 and shown["age"] == 0
    # and it hands out only live connections (after a database restart the idle ones are dead)
    assert shown["pool"]["check"] == "check_connection"
    assert shown["debug"] is False
    assert shown["sessions"] == "config.cached_sessions"  # cached_db, read with the user

    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


@pytest.mark.parametrize(("trust", "believed"), [(None, False), ("0", False), ("yes", True)])
def test_the_web_server_believes_x_forwarded_proto_only_when_told_to(
    tmp_path: Path, trust: str | None, believed: bool
) -> None:
    """uvicorn believes X-Forwarded-Proto from 127.0.0.1 unless told not to: with
    TRUST_X_FORWARDED_PROTO unset, a plain-HTTP request carrying "X-Forwarded-Proto: https"
    (from the proxy's host, or through a proxy that passes the header on) went past the
    HTTPS redirect as if it were HTTPS, whatever Django's setting said."""
    port = free_port()
    env = subprocess_env()
    env.pop("PYTEST_VERSION", None)  # production settings: the HTTPS redirect is on
    env.update(production_overrides(port))
    env.update({"SECURE_SSL_REDIRECT": "1", "WEB_CONCURRENCY": "1"})
    env.pop("TRUST_X_FORWARDED_PROTO", None)
    if trust is not None:
        env["TRUST_X_FORWARDED_PROTO"] = trust
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with serving("serve-web", env, tmp_path / "web.log", port, probe="/healthz",
                 timeout=120) as (_, base):
        plain = httpx.get(f"{base}/api/v1/graphs", timeout=10)
        claimed = httpx.get(f"{base}/api/v1/graphs", headers={"X-Forwarded-Proto": "https"},
                            timeout=10)
    assert plain.status_code == 301 and plain.headers["location"].startswith("https://")
    # believed: the API answers (no token: 401); not: redirected to HTTPS like any HTTP request
    assert claimed.status_code == (401 if believed else 301), claimed.text[:300]
