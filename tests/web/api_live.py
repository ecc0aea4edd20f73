"""Real processes for the API tests: a Daphne server, a `db_worker` and a webhook receiver,
all on 127.0.0.1 and the test database (which a transactional test commits to)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TEST_GRAPHS = {"web_review": "web_graphs:graph", "web_question": "web_graphs:question_graph"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_env() -> dict[str, str]:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SQLITE_PATH": str(db["NAME"])}
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return {"DATABASE_URL": f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"}


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH"}}
    env.update(database_env())
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "STEPWISE_EXTRA_GRAPHS": ",".join(f"{k}={v}" for k, v in TEST_GRAPHS.items()),
        "STEPWISE_LEASE_SECONDS": "2",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        **extra,
    })
    return env


class Process:
    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("wb"),
                                      stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(tmp: Path, queues: str = "*", name: str = "worker", **env: str) -> Process:
    """A `db_worker` taking `queues` (every queue by default), its output in tmp/NAME.log."""
    return Process([sys.executable, str(ROOT / "manage.py"), "db_worker", "--queue-name", queues,
                    "--interval", "0.1", "--no-startup-delay", "--no-reload"],
                   tmp / f"{name}.log", child_env(**env))


def start_server(tmp: Path) -> tuple[Process, str]:
    port = free_port()
    server = Process([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                      "config.asgi:application"], tmp / "daphne.log", child_env())
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/accounts/login/", server)
    return server, url


def wait_until_up(url: str, process: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310  our own 127.0.0.1 server
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            if time.monotonic() > deadline or process.popen.poll() is not None:
                raise RuntimeError(f"{url} did not come up:\n{process.output()}") from None
            time.sleep(0.2)


class Receiver:
    """`webhook_receiver.py` in a subprocess: answers with `statuses` in turn (then 200) and
    records each request it gets; while the file `hold` exists it answers nothing."""

    def __init__(self, tmp: Path, statuses: list[int], hold: Path | None = None) -> None:
        self.port = free_port()
        self.record = tmp / "received.jsonl"
        self.record.touch()
        env = dict(os.environ)
        if hold is not None:  # it answers once this file is gone
            env["RECEIVER_HOLD"] = str(hold)
        self.process = Process(
            [sys.executable, str(HERE / "webhook_receiver.py"), str(self.port), str(self.record),
             ",".join(map(str, statuses))], tmp / "receiver.log", env,
        )
        self.url = f"http://127.0.0.1:{self.port}/hook"
        wait_until_up(f"http://127.0.0.1:{self.port}/ready", self.process)

    def requests(self) -> list[dict[str, Any]]:
        lines = self.record.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(got := self.requests()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {len(got)} of {count} requests: {got}")
            time.sleep(0.1)
        return got
