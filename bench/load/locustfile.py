"""Simulated users of the load test (run by `python -m bench.load`, or by hand with `locust`).

- Reviewer: logs in through the real login page, then loops: GET the inbox, open one of the
  reviews it lists, POST "approve" through the review form and follow the redirect. A share
  of them (LOAD_API_SHARE) decide through the HTTP API instead (list, then decide).
- Starter (one): starts a new expense thread through the API for every decision made, so the
  inbox never runs dry and each review cycle is start -> review -> decision -> finished.
- Watcher: opens a thread page and its websocket and listens for a few seconds, like a
  person watching a run live.

Settings come from the environment (LOAD_CREDENTIALS, LOAD_TARGET, LOAD_STATE_DIR, ...).
When every reviewer has logged in, LOAD_STATE_DIR/ready is written (the measurement window
opens); when LOAD_TARGET decisions were made in the window, LOAD_STATE_DIR/done is written and
locust stops.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gevent
import websocket
from locust import HttpUser, between, constant, events, task
from locust.contrib.fasthttp import FastHttpUser

CREDS: dict[str, Any] = json.loads(Path(os.environ["LOAD_CREDENTIALS"]).read_text())
STATE = Path(os.environ["LOAD_STATE_DIR"])
TARGET = int(os.environ.get("LOAD_TARGET", "300"))
API_SHARE = float(os.environ.get("LOAD_API_SHARE", "0.25"))
REVIEWERS = int(os.environ.get("LOAD_REVIEWERS", str(len(CREDS["reviewers"]))))
# seconds a reviewer "reads" between requests (0: as fast as the server answers)
THINK = float(os.environ.get("LOAD_THINK", "0"))
# only ever take one's own share of the inbox (no races; an idle reviewer waits 0.5 s)
OWN_ONLY = os.environ.get("LOAD_OWN_ONLY") == "1"
# seconds a review waits in the team's view before a reviewer whose own share is empty takes
# it over from its owner (0: at once, the twelfth round's model; see `Reviewer.pick`)
HELP_AFTER = float(os.environ.get("LOAD_HELP_AFTER", "2"))
# decisions per second the whole team makes (0: as many as the server lets them)
RATE = float(os.environ.get("LOAD_RATE", "0"))

REVIEW_LINK = re.compile(r'href="/reviews/(\d+)/"')
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
THREAD_LINK = re.compile(r'href="/threads/([^/"]+)/"')

status_counts: Counter[str] = Counter()
shared = {"logged_in": 0, "decisions": 0, "window_decisions": 0, "started": 0, "window": False,
          "conflicts": 0, "ws_messages": 0, "threads": [], "window_requests": 0}
# review id -> when a list first showed it to any reviewer (the team's shared view of how long
# a review has waited; pruned in `_seen`)
first_seen: dict[str, float] = {}
_next_reviewer = iter(range(10**6))


def _count(kind: str, status: int) -> None:
    status_counts[f"{kind} {status}"] += 1
    if shared["window"] and shared["window_decisions"] < TARGET:
        shared["window_requests"] += 1
    if status >= 500:
        status_counts["5xx"] += 1


_next_slot = [0.0]


def _wait_for_slot() -> None:
    """At a fixed rate (LOAD_RATE), a reviewer about to decide waits for the team's next slot:
    decisions go out evenly spaced, 1 / RATE apart, as long as the reviewers keep up. An open
    loop, so the latency measured is the server's at that rate, not one that slows the
    clients down with it. Slots not taken (nobody was ready) are not made up later."""
    if RATE <= 0:
        return
    now = time.monotonic()
    slot = max(now, _next_slot[0])
    _next_slot[0] = slot + 1 / RATE
    if slot > now:
        gevent.sleep(slot - now)


def _seen(ids: list[str], now: float) -> None:
    for pk in ids:
        first_seen.setdefault(pk, now)
    if len(first_seen) > 4 * len(ids) + 1000:  # decided long ago: no list shows them any more
        shown = set(ids)
        for pk in [pk for pk, t in first_seen.items() if pk not in shown and now - t > 60]:
            del first_seen[pk]


def _decided() -> None:
    shared["decisions"] += 1
    if shared["window"]:
        shared["window_decisions"] += 1
        if shared["window_decisions"] >= TARGET and not (STATE / "done").exists():
            (STATE / "done").write_text(str(time.time()))


class Reviewer(FastHttpUser):
    weight = 100
    wait_time = constant(THINK)

    def on_start(self) -> None:
        self.index = next(_next_reviewer)
        me = CREDS["reviewers"][self.index % len(CREDS["reviewers"])]
        self.username, self.token = me["username"], me["token"]
        self.api = random.random() < API_SHARE
        page = self.client.get("/accounts/login/", name="login page")
        token = CSRF_INPUT.search(page.text or "")
        with self.client.post(
            "/accounts/login/", name="login",
            data={"username": self.username, "password": CREDS["password"],
                  "csrfmiddlewaretoken": token.group(1) if token else ""},
            headers={"Referer": f"{self.host}/accounts/login/"}, catch_response=True,
        ) as r:
            _count("login", r.status_code)
            if "/accounts/login/" in str(r.url):
                r.failure("login failed")
        shared["logged_in"] += 1
        if shared["logged_in"] >= REVIEWERS and not shared["window"]:
            shared["window"] = True
            (STATE / "ready").write_text(str(time.time()))

    def pick(self, ids: list[str]) -> str | None:
        """The reviewer's share of the queue, as a team shares out its inbox: the reviews whose
        id falls to it (by id, not by row: rows shift as reviews are decided). With none of its
        own, it helps with a colleague's review that has waited HELP_AFTER seconds since the
        team first saw it (its owner is busy), as people in a team do; two reviewers still meet
        on a review now and then: a 409, a conflict. Taking any review at once (HELP_AFTER 0)
        made idle reviewers race for the few their faster colleagues had not yet reached: more
        than one lost decision per decision made, an artefact of the simulation (nobody idle
        re-reads the queue 10 times a second to snatch a colleague's next item)."""
        now = time.monotonic()
        _seen(ids, now)
        mine = [pk for pk in ids if int(pk) % REVIEWERS == self.index % REVIEWERS]
        if mine:
            return random.choice(mine)
        if OWN_ONLY:
            return None
        waited = [pk for pk in ids if now - first_seen.get(pk, now) >= HELP_AFTER]
        return random.choice(waited) if waited else None

    @task
    def cycle(self) -> None:
        if self.api:
            self.api_cycle()
        else:
            self.page_cycle()

    def page_cycle(self) -> None:
        inbox = self.client.get("/", name="inbox")
        _count("inbox", inbox.status_code)
        ids = REVIEW_LINK.findall(inbox.text or "")
        if not ids:
            gevent.sleep(0.2)
            return
        pk = self.pick(ids)
        if pk is None:  # nothing for me yet: look again in a moment
            gevent.sleep(0.5)
            return
        page = self.client.get(f"/reviews/{pk}/", name="review page")
        _count("review", page.status_code)
        token = CSRF_INPUT.search(page.text or "")
        if page.status_code != 200 or token is None:
            return  # decided by someone else meanwhile: the page shows no form
        _wait_for_slot()
        with self.client.post(
            f"/reviews/{pk}/decide/", name="decide (form)",
            data={"csrfmiddlewaretoken": token.group(1), "action": "approve", "comment": ""},
            headers={"Referer": f"{self.host}/reviews/{pk}/"}, catch_response=True,
        ) as r:
            _count("decide", r.status_code)
            if r.status_code == 409:  # another reviewer was first: not an error
                shared["conflicts"] += 1
                r.success()
            elif r.status_code == 200:
                _count("decided review", r.status_code)  # the 303's page, followed
                _decided()

    def api_cycle(self) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        listing = self.client.get("/api/v1/reviews?status=pending&limit=100", name="api reviews",
                                  headers=auth)
        _count("api reviews", listing.status_code)
        try:
            items = listing.json().get("items", [])
        except Exception:  # noqa: BLE001 - counted as a failure by locust already
            items = []
        if not items:
            gevent.sleep(0.2)
            return
        pk = self.pick([str(item["id"]) for item in items])
        if pk is None:
            gevent.sleep(0.5)
            return
        _wait_for_slot()
        with self.client.post(f"/api/v1/reviews/{pk}/decision", name="api decide",
                              json={"action": "approve"}, headers=auth,
                              catch_response=True) as r:
            _count("api decide", r.status_code)
            if r.status_code == 409:
                shared["conflicts"] += 1
                r.success()
            elif r.status_code == 200:
                _decided()


class Starter(FastHttpUser):
    """Starts one thread per decision made, through the API (LOAD_STARTERS of them, so starting
    keeps up with deciding)."""

    fixed_count = int(os.environ.get("LOAD_STARTERS", "2"))
    wait_time = constant(0.05)

    @task
    def start_run(self) -> None:
        if shared["started"] >= shared["decisions"]:
            return
        shared["started"] += 1
        n = shared["started"]
        with self.client.post(
            "/api/v1/threads", name="api start run",
            headers={"Authorization": f"Bearer {CREDS['starter']['token']}"},
            json={"graph": "expense", "title": f"load {n}", "input": {
                "expense_id": 50_000 + n, "employee": "Load Starter", "vendor": "Office Co",
                "amount": 150 + n % 400, "currency": "EUR", "description": f"load run {n}"}},
            catch_response=True,
        ) as r:
            _count("start", r.status_code)
            if r.status_code == 201:
                threads: list[str] = shared["threads"]  # type: ignore[assignment]
                threads.append(r.json()["thread_id"])
                del threads[:-50]


class Watcher(HttpUser):
    """Opens a recent thread's page and watches it live over its websocket."""

    fixed_count = int(os.environ.get("LOAD_WATCHERS", "2"))
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        me = CREDS["reviewers"][-1]
        page = self.client.get("/accounts/login/", name="login page")
        token = CSRF_INPUT.search(page.text or "")
        self.client.post(
            "/accounts/login/", name="login",
            data={"username": me["username"], "password": CREDS["password"],
                  "csrfmiddlewaretoken": token.group(1) if token else ""},
            headers={"Referer": f"{self.host}/accounts/login/"},
        )

    @task
    def watch(self) -> None:
        threads: list[str] = shared["threads"]  # type: ignore[assignment]
        if not threads:
            gevent.sleep(0.5)
            return
        thread_id = random.choice(threads[-10:])
        page = self.client.get(f"/threads/{thread_id}/", name="thread page")
        _count("thread", page.status_code)
        ws_url = self.host.replace("http", "ws", 1) + f"/ws/threads/{thread_id}/"
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.client.cookies)
        began = time.perf_counter()
        try:
            ws = websocket.create_connection(
                ws_url, header=[f"Cookie: {cookie}"], origin=self.host, timeout=5)
        except Exception as exc:  # noqa: BLE001
            events.request.fire(request_type="WS", name="thread socket", exception=exc,
                                response_time=(time.perf_counter() - began) * 1000,
                                response_length=0)
            status_counts["ws failed"] += 1
            return
        events.request.fire(request_type="WS", name="thread socket", exception=None,
                            response_time=(time.perf_counter() - began) * 1000,
                            response_length=0)
        status_counts["ws opened"] += 1
        ws.settimeout(0.5)
        until = time.monotonic() + 3
        while time.monotonic() < until:
            try:
                if ws.recv():
                    shared["ws_messages"] += 1
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:  # noqa: BLE001 - closed by the server: stop watching
                break
        ws.close()


@events.init.add_listener
def _stop_at_target(environment: Any, **kwargs: Any) -> None:
    def watch() -> None:
        while not (STATE / "done").exists():
            gevent.sleep(0.1)
        gevent.sleep(0.1)
        if environment.runner is not None:
            environment.runner.quit()

    gevent.spawn(watch)


@events.quitting.add_listener
def _write_counts(environment: Any, **kwargs: Any) -> None:
    (STATE / "counts.json").write_text(json.dumps(
        {"status": dict(status_counts),
         **{k: v for k, v in shared.items() if k != "threads"}}))
