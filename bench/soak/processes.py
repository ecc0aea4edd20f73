"""The processes under test: M servers, N task workers and the sweeper, each a subprocess
with its own log file. The server command is pluggable (`--server-cmd`), so the soak runs
against `runserver` today and `bin/serve` (or anything serving the app on a port) later."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
# {python} and {port} are filled in; the command must serve the app on 127.0.0.1:{port}
DEFAULT_SERVER_CMD = "{python} manage.py runserver --noreload 127.0.0.1:{port}"
# The serving profile's web process (Procfile `web`: uvicorn, one process per soak server),
# with production settings: DEBUG off, static files from the collected manifest. Plain HTTP
# on 127.0.0.1, so the cookies may not ask for HTTPS.
SERVING_PROFILE_CMD = (
    "env DEBUG=0 SECRET_KEY=soak-serving-profile-secret-key-0123456789abcdefghijklmnopqrstuv"
    " SECURE_SSL_REDIRECT=0 SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0"
    " ALLOWED_HOSTS=127.0.0.1,localhost HTTP_PORT={port} WEB_CONCURRENCY=1 bin/serve-web"
)


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log = logdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.health_url = ""  # a server's /healthz: whether it serves yet (`serving`)

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n--- start {self.starts}: {shlex.join(self.argv)}\n".encode())
            log.flush()
            # a session of its own: a server command may fork children (bin/serve's processes),
            # and a kill or restart must reach all of them
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def serving(self) -> bool:
        """Alive and, for a server, answering its health check."""
        if not self.alive():
            return False
        if not self.health_url:
            return True
        try:
            return httpx.get(self.health_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL, no goodbye: the chaos."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def app_env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "SQLITE_PATH", "PYTEST_VERSION", "DATABASE_TEST_NAME",
                        "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
        # short leases and fast automatic resumes: the soak kills workers every few seconds
        "STEPWISE_LEASE_SECONDS": "3",
        "STEPWISE_STALL_MAX_ATTEMPTS": "100",
        "STEPWISE_STALL_BACKOFF_SECONDS": "0.5",
        "STEPWISE_ORPHAN_GRACE_SECONDS": "5",
        "PYTHONPATH": str(ROOT),
        # bin/serve-web and the other scripts run `python`: this interpreter's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    env.update(extra or {})
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def server(n: int, port: int, env: dict[str, str], logdir: Path, cmd: str) -> Proc:
    argv = shlex.split(cmd.format(python=sys.executable, port=port))
    proc = Proc(f"server-{n}", argv, env, logdir)
    proc.health_url = f"http://127.0.0.1:{port}/healthz"
    return proc


def worker(n: int, env: dict[str, str], logdir: Path) -> Proc:
    return Proc(f"worker-{n}", [sys.executable, "manage.py", "stepwise_worker", "--interval",
                                "0.2", "--no-reload", "--no-startup-delay"], env, logdir)


def sweeper(env: dict[str, str], logdir: Path) -> Proc:
    return Proc("sweeper", [sys.executable, "manage.py", "resume_stalled", "--auto", "--watch",
                            "auto"], env, logdir)


def wait_until_serving(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no server answered /healthz on port {port} within {timeout}s")
