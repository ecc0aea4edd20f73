"""The soak's Django-side steps, run as subprocesses on the throwaway cluster (the soak's own
process may have Django set up on another database, e.g. under pytest):

    python -m bench.soak.django_side setup REVIEWERS   -> prints {"token": ...}
    python -m bench.soak.django_side account PREFIX    -> prints the counts as JSON
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

PASSWORD = "soak-password-1"  # noqa: S105 - throwaway users on a throwaway cluster


def setup(reviewers: int) -> dict[str, Any]:
    from io import StringIO

    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    for n in range(reviewers):
        user, _ = User.objects.get_or_create(username=f"soak-reviewer-{n}")
        user.set_password(PASSWORD)
        user.save()
        user.groups.add(Group.objects.get(name="reviewer"))
    starter, _ = User.objects.get_or_create(username="soak-starter",
                                            defaults={"is_superuser": True, "is_staff": True})
    starter.set_password(PASSWORD)
    starter.save()
    out = StringIO()
    call_command("create_api_token", "soak-starter", "--name", "soak", stdout=out)
    token = out.getvalue().strip().split()[-1]
    return {"token": token}


def account(prefix: str) -> dict[str, Any]:
    """The counts the soak judges, from the database."""
    from approvals.models import Decision, ReviewRequest
    from demo.models import Payout
    from orchestration.runtime.healing import AUTO_RESUMED, NEEDS_OPS
    from orchestration.runtime.models import Checkpoint, Event, Run, Thread

    threads = Thread.objects.filter(thread_id__startswith=prefix)
    runs = Run.objects.filter(thread__in=threads)
    reviews = ReviewRequest.objects.filter(thread__in=threads)
    run_status = Counter(runs.values_list("status", flat=True))
    thread_status = Counter(threads.values_list("status", flat=True))
    # a decision applied twice would make the review node write twice on the thread's branch
    applied = Counter()
    for thread_pk, written_by in Checkpoint.objects.filter(thread__in=threads).values_list(
        "thread_id", "written_by"
    ):
        if "review" in (written_by or []):
            applied[thread_pk] += 1
    # the cluster is the soak's own: every payout in it is one of the soak's expenses
    expense_ids = list(Payout.objects.values_list("expense_id", flat=True))
    paid = Counter(expense_ids)
    events = Event.objects.filter(thread__in=threads)
    return {
        "threads": threads.count(),
        "threads_done": thread_status.get("done", 0),
        "threads_by_status": dict(thread_status),
        "runs_by_status": dict(run_status),
        "runs_unfinished": sum(n for s, n in run_status.items()
                               if s in ("queued", "running", "stalled", "waiting", "failed")),
        "reviews": reviews.count(),
        "reviews_open": reviews.filter(status__in=ReviewRequest.OPEN).count(),
        "reviews_decided": reviews.filter(status="decided").count(),
        "decisions": Decision.objects.filter(review__in=reviews).count(),
        "decided_review_ids": sorted(
            Decision.objects.filter(review__in=reviews).values_list("review_id", flat=True)
        ),
        "decisions_applied": sum(applied.values()),
        "decisions_applied_twice": sum(1 for n in applied.values() if n > 1),
        "payouts": len(expense_ids),
        "payouts_duplicated": sum(1 for n in paid.values() if n > 1),
        "stalls": events.filter(kind="run_stalled").count(),
        "auto_resumes": events.filter(kind=AUTO_RESUMED).count(),
        "needs_ops": events.filter(kind=NEEDS_OPS).count(),
        "orphans_requeued": events.filter(kind="run_requeued", data__orphaned=True).count(),
        "lease_lost": events.filter(kind="run_lease_lost").count(),
        "thread_ids": sorted(threads.values_list("thread_id", flat=True)),
        "stuck": stuck(threads),
    }


def stuck(threads: Any, limit: int = 20) -> list[dict[str, Any]]:
    """Where each thread that is not done (or has an open review) stands: its runs, their
    tasks in the queue, its reviews and its last events. Printed when the soak fails, so a
    stuck thread says which state it is stuck in."""
    from django.db.models import Q
    from django_tasks_db.models import DBTaskResult

    from approvals.models import ReviewRequest
    from orchestration.runtime.leases import EXECUTE_RUN_PATH
    from orchestration.runtime.models import Event

    open_reviews = ReviewRequest.objects.filter(status__in=ReviewRequest.OPEN)
    out = []
    for thread in threads.filter(~Q(status="done") | Q(reviews__in=open_reviews)).distinct()[
            :limit]:
        runs = list(thread.runs.order_by("pk"))
        run_ids = {run.pk for run in runs}
        tasks = [
            {"id": str(t.id)[:8], "run": (t.args_kwargs.get("args") or [None])[0],
             "status": t.status, "enqueued": t.enqueued_at.isoformat(timespec="milliseconds"),
             "workers": t.worker_ids, "exception": t.exception_class_path,
             "traceback": t.traceback[-600:]}
            for t in DBTaskResult.objects.filter(task_path=EXECUTE_RUN_PATH).order_by(
                "enqueued_at")
            if isinstance(t.args_kwargs, dict) and (t.args_kwargs.get("args") or [None])[0]
            in run_ids
        ]
        out.append({
            "thread": thread.thread_id, "status": thread.status,
            "runs": [{"id": r.pk, "kind": r.kind, "status": r.status, "attempts": r.attempts,
                      "worker": r.worker, "task": r.task_result_id[:8],
                      "lease_expires": r.lease_expires_at and r.lease_expires_at.isoformat(
                          timespec="milliseconds"),
                      "error": r.error[:600]} for r in runs],
            "tasks": tasks,
            "reviews": list(thread.reviews.values_list("pk", "status")),
            "events": [f"{e.created_at:%H:%M:%S.%f} run {e.run_id} {e.kind} {e.reason[:120]}"
                       for e in Event.objects.filter(thread=thread).order_by("pk")],
        })
    return out


def main(argv: list[str]) -> None:
    import django

    django.setup()
    if argv[0] == "setup":
        result = setup(int(argv[1]))
    elif argv[0] == "account":
        result = account(argv[1])
    else:
        raise SystemExit(f"unknown step {argv[0]!r}: setup or account")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
