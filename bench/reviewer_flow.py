"""A reviewer's hour, measured: decide N simple reviews from the inbox with the keyboard only.

    .venv/bin/python -m bench.reviewer_flow [--reviews 20] [--repeat 3] [--json out.json]

Sets up a throwaway SQLite database (demo users, N expense threads paused at their review),
serves it with Daphne (DEBUG=1, as `bin/demo` does) and drives Debian's Chromium through
Playwright: `j` and `Enter` open the first review of the inbox, then `a` approves each review
and the next one is swapped in. Reported per review: keystrokes, full page loads (`load`
events: htmx swaps and history pushes fire none) and the time from the keystroke to the next
review painted (keydown -> htmx swap -> next animation frame, measured in the page). No worker
runs: the resumed runs wait in the queue, which keeps the machine's load on the reviewer's
side of the flow; the decision itself (the review row, the decision row, the resume run and
its task) is written in full.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "stepwise-demo"  # noqa: S105 - seed_demo's published demo password

SEED = """
from decimal import Decimal
from demo.workflows.expense import Expense
from orchestration.runtime.runs import run_inline, start_thread
from django.contrib.auth import get_user_model
ada = get_user_model().objects.get(username="ada")
with run_inline():
    for n in range({n}):
        start_thread("expense", Expense(expense_id=9000 + n, employee="Bench Person",
                     vendor="Rail Co", amount=Decimal("250.00") + n,
                     description="Train ticket"), user=ada, title=f"Bench expense {{n}}")
"""

# Installed in the page: keydown time, then the first paint after htmx swapped a new body in.
PROBE = """() => {
  window.__bench = {t0: null, shown: []};
  document.addEventListener('keydown', () => { window.__bench.t0 = performance.now(); }, true);
  document.body.addEventListener('htmx:afterSwap', () => {
    const t0 = window.__bench.t0;
    requestAnimationFrame(() => window.__bench.shown.push(performance.now() - t0));
  });
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def prepare(tmp: Path, reviews: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DEBUG="1", SQLITE_PATH=str(tmp / "bench.sqlite3"), LOG_LEVEL="WARNING",
               DJANGO_SETTINGS_MODULE="config.settings")
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo", "--no-threads")
    manage(env, "shell", "-c", SEED.format(n=reviews))
    return env


def serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "config.asgi:application"], cwd=ROOT, env=env, stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2)  # noqa: S310
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"daphne did not start: {log.read_text()}") from None
            time.sleep(0.2)


def drive(url: str, reviews: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(f"{url}/accounts/login/")
        page.fill("#id_username", "rita")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/")
        page.goto(f"{url}/?graph=expense")

        loads: list[str] = []
        page.on("load", lambda pg: loads.append(pg.url))
        keys = 0

        def press(key: str) -> None:
            nonlocal keys
            keys += 1
            page.keyboard.press(key)

        press("j")
        press("Enter")  # opens the first review (in place: an htmx swap, URL pushed)
        page.wait_for_selector("#review-page")
        opening = {"keystrokes": keys, "full_loads": len(loads)}
        page.evaluate(PROBE)
        rows = []
        for i in range(reviews):
            current = page.get_attribute("#review-page", "data-review")
            loads_before, keys_before = len(loads), keys
            press("a")
            if i < reviews - 1:
                page.wait_for_function(
                    "(pk) => { const el = document.getElementById('review-page');"
                    " return el && el.dataset.review !== pk && window.__bench.shown.length > 0 }",
                    arg=current)
                ms = page.evaluate("() => window.__bench.shown.shift()")
                # past the double-keystroke guard (300 ms after the request ends)
                page.wait_for_timeout(400)
            else:  # the last one: the queue is empty, the inbox opens (a full page load)
                page.wait_for_selector("#inbox-list")
                ms = None
            rows.append({"review": int(current), "keystrokes": keys - keys_before,
                         "full_loads": len(loads) - loads_before, "ms_to_next": ms})
        browser.close()
    return {"opening": opening, "reviews": rows}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    times = [r["ms_to_next"] for run in runs for r in run["reviews"] if r["ms_to_next"] is not None]
    per_run_median = [statistics.median([r["ms_to_next"] for r in run["reviews"]
                                         if r["ms_to_next"] is not None]) for run in runs]
    approvals = [r for run in runs for r in run["reviews"]]
    return {
        "reviews_per_run": len(runs[0]["reviews"]),
        "runs": len(runs),
        "keystrokes_per_approval": statistics.mean(r["keystrokes"] for r in approvals),
        "full_loads_per_approval_before_the_last": statistics.mean(
            r["full_loads"] for run in runs for r in run["reviews"][:-1]),
        "ms_median": round(statistics.median(times), 1),
        "ms_p95": round(sorted(times)[max(0, int(len(times) * 0.95) - 1)], 1),
        "ms_max": round(max(times), 1),
        "ms_median_per_run": [round(m, 1) for m in per_run_median],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reviews", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    results = []
    for n in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="stepwise-reviewer-bench-") as tmp:
            env = prepare(Path(tmp), args.reviews)
            port = free_port()
            server = serve(env, port, Path(tmp) / "daphne.log")
            try:
                result = drive(f"http://127.0.0.1:{port}", args.reviews)
            finally:
                server.terminate()
                server.wait(timeout=10)
        results.append(result)
        print(f"run {n + 1}: opening {result['opening']}")
        for row in result["reviews"]:
            ms = "inbox (queue empty)" if row["ms_to_next"] is None else \
                f"{row['ms_to_next']:.1f} ms"
            print(f"  review #{row['review']:>3}: {row['keystrokes']} keystroke, "
                  f"{row['full_loads']} full load, next shown after {ms}")
    summary = summarize(results)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
