"""`manage.py sweep_reviews [--watch SECONDS]`: escalate overdue reviews (once each), return
idle claims to the pool, and queue again webhook deliveries that nothing would send; on its
first pass and then every STEPWISE_PRUNE_EVERY_SECONDS, delete stored API responses past
their replay window and expired sessions (`approvals.housekeeping`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from approvals.api.webhooks import requeue_stuck_deliveries
from approvals.housekeeping import tidy
from approvals.notify import escalate_overdue, release_idle_claims
from orchestration.runtime import sweeping
from orchestration.runtime.retention import prune_every_seconds


class Command(BaseCommand):
    help = ("Escalate reviews past their due time (e-mail to ops, review.overdue webhook) and "
            "return reviews claimed longer than STEPWISE_CLAIM_IDLE_SECONDS to the pool.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--watch", type=float, default=0,
                            help="Repeat every this many seconds instead of once.")

    def handle(self, *args: Any, watch: float, **options: Any) -> None:
        self.tidying = sweeping.Every(prune_every_seconds)  # the first pass, then every N s
        # a failed pass is logged, counted and retried with backoff; it never ends a watch
        # (under honcho, one process exiting stops them all)
        sweeping.watch("sweep_reviews", self.sweep, interval=watch)

    def sweep(self) -> None:
        escalated = escalate_overdue()
        if escalated:
            self.stdout.write(f"escalated overdue reviews {escalated}")
        released = release_idle_claims()
        if released:
            self.stdout.write(f"released claims on reviews {released}")
        stuck = requeue_stuck_deliveries()
        if stuck:
            self.stdout.write(f"queued stuck webhook deliveries {stuck} again")
        if self.tidying.due():
            tidied = tidy()
            if tidied:
                self.stdout.write(f"deleted {tidied.idempotency_records} stored API "
                                  f"response(s) and {tidied.sessions} expired session(s)")
