"""End-to-end fixtures: a live Daphne server and a `db_worker` on the test database, driven by
headless Chromium through Playwright. Run with `pytest tests/e2e -m e2e`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection

from approvals.roles import ensure_roles

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "e2e-password"  # noqa: S105

pytestmark = pytest.mark.e2e
HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _allow_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    # Playwright's sync API keeps an event loop running in this thread; Django would otherwise
    # refuse every ORM call the tests make between browser steps. Scoped to these tests only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: only touch the ones in this folder.
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
        item.add_marker(pytest.mark.e2e)
        if not Path(CHROMIUM).exists():
            if os.environ.get("CI"):
                raise pytest.UsageError(f"{CHROMIUM} is missing in CI: bin/test installs it")
            reason = f"{CHROMIUM} missing: apt-get install -y chromium (bin/test does it)"
            item.add_marker(pytest.mark.skip(reason=reason))


def database_env() -> dict[str, str]:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SQLITE_PATH": str(db["NAME"])}
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return {"DATABASE_URL": f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH"}}
    env.update(database_env())
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",  # plain-HTTP cookies and static files from the finders
        "LOG_LEVEL": "WARNING",
        "STEPWISE_LEASE_SECONDS": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    return env


class Process:
    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self.args = args
        self.popen = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.args, cwd=ROOT, env=child_env(),
                                stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def keep_alive(self) -> None:
        """Start it again whenever it exits, until `stop`. The worker does exit when a test's
        teardown flushes the database under a task it is running (django-tasks-db's
        `db_worker` exits when the task row it finishes is gone), and that can happen while
        the next test already waits for it."""
        self._watching = threading.Event()

        def watch() -> None:
            while not self._watching.wait(0.2):
                if self.popen.poll() is not None:
                    self.popen = self._start()

        threading.Thread(target=watch, name=f"keep {self.name} alive", daemon=True).start()

    def stop(self) -> None:
        watching = getattr(self, "_watching", None)
        if watching is not None:
            watching.set()
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


# Module scope: a worker left running would take the tasks of later (non-e2e) tests that share
# the test database, with graphs they did not register.
@pytest.fixture(scope="module")
def processes(django_db_setup: Any, django_db_blocker: Any,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server and one worker per e2e module (they only need the database)."""
    logs = tmp_path_factory.mktemp("e2e-logs")
    port = free_port()
    with django_db_blocker.unblock():
        server = Process("daphne", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p",
                                    str(port), "config.asgi:application"], logs / "daphne.log")
        worker = Process("worker", [sys.executable, str(ROOT / "manage.py"), "db_worker",
                                    "--queue-name", "*", "--interval", "0.1",
                                    "--no-startup-delay", "--no-reload"],
                         logs / "worker.log")
        worker.keep_alive()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/accounts/login/", timeout=2)  # noqa: S310
            break
        except OSError:
            if time.monotonic() > deadline or server.popen.poll() is not None:
                raise RuntimeError(f"daphne did not start:\n{server.output()}") from None
            time.sleep(0.2)
    yield {"url": url, "server": server, "worker": worker}
    server.stop()
    worker.stop()


@pytest.fixture
def live_url(processes: dict[str, Any], transactional_db: None) -> str:
    if not Group.objects.filter(name="reviewer").exists():
        ensure_roles(Group, Permission)  # a transactional test flushed the migration's groups
    return processes["url"]


@pytest.fixture
def make_login_user(live_url: str) -> Callable[..., User]:
    def make(username: str, role: str) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD)
        user.groups.add(Group.objects.get(name=role))
        return user

    return make


# Module scope: Playwright's sync API runs an event loop in the main thread while it is open,
# and Django refuses ORM calls from sync tests that run after it; closing it here ends the loop.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def login(browser: Any, live_url: str, make_login_user: Callable[..., User]) -> Iterator[Any]:
    """`login(username, role)` -> a Playwright page logged in as a new user of that role."""
    contexts: list[Any] = []

    def open_as(username: str, role: str) -> Any:
        make_login_user(username, role)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{live_url}/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_url}/")
        return page

    yield open_as
    for context in contexts:
        context.close()
