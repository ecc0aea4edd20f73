"""The load test's database side, run as a subprocess with the served settings:

    python -m bench.load.djangoside seed REVIEWERS BACKLOG OUT.json
    python -m bench.load.djangoside count
    python -m bench.load.djangoside report SINCE_ISO UNTIL_ISO

`seed` creates the simulated users (reviewers with an API token each, one starter in `ops`)
and BACKLOG expense threads waiting for review; `report` prints, as JSON, what the database
says about the decisions made in the window: decision-to-run-finished latencies and whether
every run is accounted for exactly once.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models import Count  # noqa: E402

from approvals.api.tokens import issue_token  # noqa: E402
from approvals.models import Decision, ReviewRequest  # noqa: E402
from orchestration.runtime.models import Run  # noqa: E402
from orchestration.runtime.runs import run_inline, start_thread  # noqa: E402

PASSWORD = "load-test-password-9"  # noqa: S105 - throwaway users of a throwaway database


def expense(i: int) -> dict[str, Any]:
    """An expense over the auto-approval limit, so its run pauses for a review."""
    return {"expense_id": i, "employee": f"Load Tester {i % 17}", "vendor": "Office Supplies Co",
            "amount": 150 + i % 400, "currency": "EUR", "description": f"load test item {i}"}


def seed(reviewers: int, backlog: int, out: str) -> None:
    users = get_user_model()
    reviewer_group = Group.objects.get(name="reviewer")
    ops_group = Group.objects.get(name="ops")
    creds: dict[str, Any] = {"password": PASSWORD, "reviewers": [], "starter": None}
    with transaction.atomic():
        for n in range(1, reviewers + 1):
            user, _ = users.objects.get_or_create(username=f"load-r{n}")
            user.set_password(PASSWORD)
            user.save()
            user.groups.add(reviewer_group)
            creds["reviewers"].append({"username": user.username, "token": issue_token(user)[1]})
        starter, _ = users.objects.get_or_create(username="load-starter")
        starter.groups.add(ops_group)
        creds["starter"] = {"username": starter.username, "token": issue_token(starter)[1]}
    # Run in this process: the backlog is the starting state, not part of the measurement.
    with run_inline():
        for i in range(backlog):
            start_thread("expense", expense(10_000 + i), user=starter,
                         title=f"load backlog {i}")
    with open(out, "w") as fh:
        json.dump(creds, fh)
    print(json.dumps({"open_reviews": ReviewRequest.objects.filter(
        status__in=ReviewRequest.OPEN).count()}))


def count() -> None:
    print(json.dumps({
        "decisions": Decision.objects.count(),
        "open_reviews": ReviewRequest.objects.filter(status__in=ReviewRequest.OPEN).count(),
        "active_runs": Run.objects.filter(
            status__in=[Run.Status.QUEUED, Run.Status.RUNNING, Run.Status.STALLED]).count(),
    }))


def report(since: str, until: str) -> None:
    start, end = datetime.fromisoformat(since), datetime.fromisoformat(until)
    decisions = Decision.objects.filter(decided_at__gte=start, decided_at__lt=end)
    rows = list(decisions.values_list("decided_at", "resumed_run__finished_at",
                                      "resumed_run__status"))
    latencies = sorted(
        (finished - decided).total_seconds() * 1000
        for decided, finished, _ in rows if finished is not None
    )
    statuses: dict[str, int] = {}
    for _, _, status in rows:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    # Every run accounted for exactly once: no run resumed by two decisions, no review
    # decided twice, no run left running or stalled.
    shared_runs = (Decision.objects.values("resumed_run").annotate(n=Count("id"))
                   .filter(n__gt=1).count())
    print(json.dumps({
        "decisions": len(rows),
        "finished": len(latencies),
        "run_statuses": statuses,
        "decision_to_finished_ms": latencies,
        "runs_resumed_twice": shared_runs,
        "runs_not_ended": Run.objects.filter(
            status__in=[Run.Status.RUNNING, Run.Status.STALLED]).count(),
        "failed_runs": Run.objects.filter(status=Run.Status.FAILED).count(),
    }))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "seed":
        seed(int(args[0]), int(args[1]), args[2])
    elif command == "count":
        count()
    elif command == "report":
        report(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {command!r}: seed, count or report")
