"""The load: one thread starts expense threads through the HTTP API; reviewer threads log in
and work through the real pages (inbox, review, approve, follow the redirect), as people do.

Every request that fails because a process or the database is being restarted (connection
refused or reset, 5xx) is retried: the soak counts what happened in the database, not what
the client saw, and reports the failed requests separately."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

REVIEW_LINK = re.compile(r'href="/reviews/(\d+)/"')
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter[str] = field(default_factory=Counter)
    started: set[str] = field(default_factory=set)
    accepted: set[int] = field(default_factory=set)   # decisions the server said it recorded
    already: set[int] = field(default_factory=set)    # 409: someone (maybe we) decided it

    def count(self, what: str) -> None:
        with self.lock:
            self.requests[what] += 1


class Client:
    """httpx with retries over restarts; `bases` are the server processes, round-robin."""

    def __init__(self, bases: list[str], tally: Tally, stop: threading.Event) -> None:
        self.bases = bases
        self.tally = tally
        self.stop = stop
        self.http = httpx.Client(timeout=30, follow_redirects=False)
        self.n = random.randrange(len(bases))

    def request(self, method: str, path: str, *, ok: Callable[[int], bool] = lambda s: s < 500,
                tries: int = 60, **kwargs: object) -> httpx.Response | None:
        for _ in range(tries):
            self.n += 1
            base = self.bases[self.n % len(self.bases)]
            try:
                response = self.http.request(method, base + path, **kwargs)  # type: ignore[arg-type]
            except httpx.HTTPError:
                self.tally.count("connection_error")
                time.sleep(0.5)
                continue
            if response.status_code >= 500:
                self.tally.count("http_5xx")
                time.sleep(0.5)
                continue
            self.tally.count("ok")
            if ok(response.status_code):
                return response
            return response
        return None

    def csrf(self) -> str:
        return self.http.cookies.get("csrftoken") or ""


def reviewer(username: str, password: str, bases: list[str], tally: Tally,
             stop: threading.Event) -> None:
    client = Client(bases, tally, stop)
    logged_in = False
    while not stop.is_set():
        if not logged_in:
            page = client.request("GET", "/accounts/login/")
            if page is None:
                continue
            token = CSRF_INPUT.search(page.text)
            response = client.request("POST", "/accounts/login/", data={
                "username": username, "password": password,
                "csrfmiddlewaretoken": token.group(1) if token else client.csrf(),
            }, headers={"Referer": bases[0] + "/accounts/login/"})
            logged_in = response is not None and response.status_code == 302
            if not logged_in:
                time.sleep(0.5)
            continue
        inbox = client.request("GET", "/")
        if inbox is None:
            continue
        if inbox.status_code == 302:  # the session is gone (never, unless the DB lost it)
            logged_in = False
            continue
        ids = [int(i) for i in REVIEW_LINK.findall(inbox.text)]
        if not ids:
            time.sleep(0.3)
            continue
        pk = random.choice(ids)
        page = client.request("GET", f"/reviews/{pk}/")
        if page is None or page.status_code != 200:
            continue
        token = CSRF_INPUT.search(page.text)
        if token is None:  # decided meanwhile: the page shows the decision, no form
            continue
        response = client.request("POST", f"/reviews/{pk}/decide/", data={
            "action": "approve", "comment": f"soak {username}",
            "csrfmiddlewaretoken": token.group(1),
        }, headers={"Referer": f"{bases[0]}/reviews/{pk}/"})
        if response is None:
            continue
        with tally.lock:
            if response.status_code == 303:
                tally.accepted.add(pk)
            elif response.status_code == 409:
                tally.already.add(pk)
            else:
                tally.requests[f"decide_{response.status_code}"] += 1
        if response.status_code == 303:
            client.request("GET", response.headers["location"])  # follow it, like a browser


def starter(token: str, prefix: str, count: int, backlog: int, bases: list[str], tally: Tally,
            stop: threading.Event) -> None:
    """Start `count` expense threads, keeping at most `backlog` of them waiting for review."""
    client = Client(bases, tally, stop)
    headers = {"Authorization": f"Bearer {token}"}
    n = 0
    while n < count and not stop.is_set():
        with tally.lock:
            waiting = len(tally.started) - len(tally.accepted | tally.already)
        if waiting >= backlog:
            time.sleep(0.1)
            continue
        thread_id = f"{prefix}-{n:05d}"
        body = {"graph": "expense", "thread_id": thread_id, "title": f"soak {n}", "input": {
            "expense_id": n + 1, "employee": "soak", "vendor": "Acme", "currency": "EUR",
            "amount": 150 + n % 50, "description": "soak test expense",
        }}
        response = client.request("POST", "/api/v1/threads", json=body, headers=headers)
        # 409: an earlier try that we saw fail did create it (explicit thread ids make a
        # retried start idempotent)
        if response is not None and response.status_code in (201, 409):
            with tally.lock:
                tally.started.add(thread_id)
            n += 1
        elif response is not None:
            raise RuntimeError(f"starting {thread_id}: HTTP {response.status_code} "
                               f"{response.text[:500]}")
