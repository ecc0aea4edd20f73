"""CPU and queries per request of the pages a review cycle uses, in this process (Django's test
client, the served settings, DEBUG off), on a scratch database:

    SQLITE_PATH=/tmp/pages.sqlite3 python manage.py migrate
    SQLITE_PATH=/tmp/pages.sqlite3 python -m bench.pages_cpu [--repeat 40] [--profile inbox]

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/stepwise_pages python -m bench.pages_cpu

(ALLOWED_HOSTS must include `testserver`; SECRET_KEY as the settings ask.) It seeds a reviewer,
a starter and `--backlog` expense threads waiting for review (once; recognised by their
usernames), then requests each page kind of a review cycle (`bench/load/locustfile.py`): the
inbox, an open review's page, the form decision and the page it redirects to, a form decision
that lost (409, someone else decided first), the API's review list, decision and start of a
run. Printed per kind: CPU-ms of this process per request
(process_time: the Django side, steadier than wall time on a busy machine), on PostgreSQL also
the CPU-ms of the database backend serving this connection (from /proc), and the number of
SQL queries. `--profile KIND` prints the cProfile top of that kind (CPU time), `--sql KIND`
the statements of its last request. `--asgi` sends the requests through the served ASGI
application (`config.asgi`, as uvicorn calls it: its thread hops included) instead of the
test client's synchronous handler.

Decisions enqueue their runs' resumption and nothing here runs them (no worker), so each
decision and start costs what it costs the server, not the worker.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from approvals.api.tokens import issue_token  # noqa: E402
from approvals.models import ReviewRequest  # noqa: E402
from orchestration.runtime.runs import run_inline, start_thread  # noqa: E402

REVIEWER, STARTER = "pages-reviewer", "pages-starter"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def expense(i: int) -> dict[str, Any]:
    return {"expense_id": i, "employee": f"Pages Tester {i % 17}", "vendor": "Office Co",
            "amount": 150 + i % 400, "currency": "EUR", "description": f"pages item {i}"}


def seed(backlog: int) -> tuple[Any, str, str]:
    users = get_user_model()
    reviewer, _ = users.objects.get_or_create(username=REVIEWER)
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    starter, _ = users.objects.get_or_create(username=STARTER)
    starter.groups.add(Group.objects.get(name="ops"))
    open_now = ReviewRequest.objects.filter(status__in=ReviewRequest.OPEN).count()
    with run_inline():
        for i in range(max(0, backlog - open_now)):
            start_thread("expense", expense(int(time.time() * 1000) % 10**9 + i), user=starter,
                         title=f"pages backlog {i}")
    return reviewer, issue_token(reviewer)[1], issue_token(starter)[1]


def backend_ms() -> float | None:
    """CPU-ms so far of the PostgreSQL backend serving this connection (None on SQLite)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


class AsgiClient:
    """The few `Client` calls used here, sent through the ASGI app on one event loop."""

    def __init__(self, cookies: Any, headers: dict[str, str] | None = None) -> None:
        import asyncio

        from config.asgi import application

        self.app, self.loop = application, asyncio.new_event_loop()
        self.cookies = cookies
        self.headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    def get(self, path: str, **_: Any) -> Any:
        return self._call("GET", path, b"", "")

    def post(self, path: str, data: Any = None, content_type: str = "", **_: Any) -> Any:
        if isinstance(data, dict):
            from urllib.parse import urlencode

            body, content_type = urlencode(data).encode(), "application/x-www-form-urlencoded"
        else:
            body = (data or "").encode()
        return self._call("POST", path, body, content_type)

    def _call(self, method: str, path: str, body: bytes, content_type: str) -> Any:
        from http.cookies import SimpleCookie
        from types import SimpleNamespace

        target, _, query = path.partition("?")
        headers = [(b"host", b"testserver"), *self.headers,
                   (b"content-length", str(len(body)).encode())]
        if content_type:
            headers.append((b"content-type", content_type.encode()))
        cookie = "; ".join(f"{k}={m.value}" for k, m in self.cookies.items())
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        token = self.cookies.get("csrftoken")
        if method == "POST" and token is not None:
            headers += [(b"x-csrftoken", token.value.encode()),
                        (b"referer", b"https://testserver/")]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "https", "path": target, "raw_path": target.encode(),
                 "query_string": query.encode(), "headers": headers, "server": ("testserver", 443),
                 "client": ("127.0.0.1", 5000), "root_path": ""}
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        out: dict[str, Any] = {"status": 0, "body": b"", "headers": []}

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            import asyncio

            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"], out["headers"] = message["status"], message["headers"]
            elif message["type"] == "http.response.body":
                out["body"] += message.get("body", b"")

        self.loop.run_until_complete(self.app(scope, receive, send))
        for name, value in out["headers"]:
            if name.lower() == b"set-cookie":
                self.cookies.update(SimpleCookie(value.decode()))
        return SimpleNamespace(status_code=out["status"], content=out["body"])


def measure(name: str, make: Callable[[], Callable[[], Any]], repeat: int,
            profile: str | None, show_sql: str | None = None) -> dict[str, Any]:
    """`make()` returns one request ready to send (so picking a review is outside the timing)."""
    for _ in range(3):
        make()()
    cpu: list[float] = []
    queries: list[int] = []
    db_before = backend_ms()
    # process_time: the profile shows where this process spends CPU, not where it waits for
    # the database (psycopg's wait() would otherwise be a quarter of it)
    prof = cProfile.Profile(time.process_time) if profile == name else None
    for _ in range(repeat):
        call = make()
        with CaptureQueriesContext(connection) as ctx:
            if prof:
                prof.enable()
            t = time.process_time()
            response = call()
            cpu.append((time.process_time() - t) * 1000)
            if prof:
                prof.disable()
        expected = 409 if name == "decide lost" else None
        assert response.status_code == expected or (expected is None and response.status_code
                                                    < 400), (name, response.status_code,
                                                             response.content[:300])
        queries.append(len(ctx.captured_queries))
        if show_sql == name and len(queries) == repeat:
            for q in ctx.captured_queries:
                print(q["sql"][:400])
    db_after = backend_ms()
    if prof and os.environ.get("PAGES_CPU_PROFILE_OUT"):  # for snakeviz, pstats by hand
        prof.dump_stats(os.environ["PAGES_CPU_PROFILE_OUT"])
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(45)
        pstats.Stats(prof).sort_stats("cumtime").print_stats(45)
    row = {"kind": name, "cpu_ms": round(statistics.median(cpu), 2),
           "cpu_ms_mean": round(statistics.fmean(cpu), 2), "queries": max(queries)}
    if db_before is not None and db_after is not None:
        row["db_cpu_ms"] = round((db_after - db_before) / repeat, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--backlog", type=int, default=0, help="default: 5 x repeat + 30")
    parser.add_argument("--profile", help="cProfile this kind (inbox, review, decide, ...)")
    parser.add_argument("--sql", help="print the SQL of the last request of this kind")
    parser.add_argument("--json", action="store_true", help="one JSON line per kind")
    parser.add_argument("--asgi", action="store_true",
                        help="through config.asgi (the served app) instead of the test client")
    args = parser.parse_args()
    reviewer, token, starter_token = seed(args.backlog or 5 * args.repeat + 30)
    web = Client()
    web.force_login(reviewer)
    api = Client(headers={"Authorization": f"Bearer {token}"})
    starter = Client(headers={"Authorization": f"Bearer {starter_token}"})
    secure = {"secure": True}
    if args.asgi:
        web.get("/", **secure)  # the CSRF cookie the form posts send back
        web = AsgiClient(web.cookies)  # type: ignore[assignment]
        api = AsgiClient({}, {"Authorization": f"Bearer {token}"})  # type: ignore[assignment]
        starter = AsgiClient(  # type: ignore[assignment]
            {}, {"Authorization": f"Bearer {starter_token}"})

    def open_review() -> int:
        return (ReviewRequest.objects.filter(status=ReviewRequest.Status.PENDING)
                .order_by("-pk").values_list("pk", flat=True).first())

    decided = [0]

    def decide() -> Callable[[], Any]:
        pk = open_review()
        decided[0] = pk
        return lambda: web.post(f"/reviews/{pk}/decide/", {"action": "approve", "comment": ""},
                                **secure)

    n = [0]

    def start() -> Callable[[], Any]:
        n[0] += 1
        body = {"graph": "expense", "title": f"pages {n[0]}",
                "input": expense(int(time.time() * 1000) % 10**9)}
        return lambda: starter.post("/api/v1/threads", json.dumps(body),
                                    content_type="application/json", **secure)

    def api_decide() -> Callable[[], Any]:
        pk = open_review()
        return lambda: api.post(f"/api/v1/reviews/{pk}/decision", '{"action": "approve"}',
                                content_type="application/json", **secure)

    kinds: list[tuple[str, Callable[[], Callable[[], Any]]]] = [
        ("inbox", lambda: lambda: web.get("/", **secure)),
        ("review", lambda: (lambda pk: lambda: web.get(f"/reviews/{pk}/", **secure))(
            open_review())),
        ("decide", decide),
        ("review decided", lambda: (lambda pk: lambda: web.get(f"/reviews/{pk}/", **secure))(
            decided[0])),
        # a decision someone else's beat: what the losing reviewer gets (409)
        ("decide lost", lambda: (lambda pk: lambda: web.post(
            f"/reviews/{pk}/decide/", {"action": "approve", "comment": ""}, **secure))(
            decided[0])),
        ("api reviews", lambda: lambda: api.get("/api/v1/reviews?status=pending&limit=100",
                                                 **secure)),
        ("api decide", api_decide),
        ("api start run", start),
    ]
    rows = [measure(name, make, args.repeat, args.profile, args.sql) for name, make in kinds]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"{connection.vendor}, {'ASGI app' if args.asgi else 'test client'}, "
          f"{args.repeat} requests per kind, load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'kind':16} {'CPU-ms':>7} {'mean':>7} {'DB CPU-ms':>9} {'queries':>7}")
    for row in rows:
        db = row.get("db_cpu_ms")
        print(f"{row['kind']:16} {row['cpu_ms']:7.2f} {row['cpu_ms_mean']:7.2f} "
              f"{'' if db is None else f'{db:.2f}':>9} {row['queries']:7d}")


if __name__ == "__main__":
    main()
