"""`manage.py sweep_reviews [--watch SECONDS]`: escalate overdue reviews (once each), return
idle claims to the pool, and queue again webhook deliveries that nothing would send; on its
first pass and then every STEPWISE_PRUNE_EVERY_SECONDS, delete stored API responses past
their replay window and expired sessions (`approvals.housekeeping`).

What it does goes to the log (`logging`: JSON lines in production): an escalation at WARNING,
one line per review with its `review_id` (`logcontext`), stuck deliveries at WARNING, the
rest at INFO. A single pass (no `--watch`) also prints readable lines on stdout."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from approvals.api.webhooks import requeue_stuck_deliveries
from approvals.housekeeping import tidy
from approvals.notify import escalate_overdue, release_idle_claims
from orchestration.runtime import sweeping
from orchestration.runtime.logcontext import log_context
from orchestration.runtime.retention import prune_every_seconds

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = ("Escalate reviews past their due time (e-mail to ops, review.overdue webhook) and "
            "return reviews claimed longer than STEPWISE_CLAIM_IDLE_SECONDS to the pool.")
    echo = True  # readable lines on stdout: a single pass, not a --watch loop

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--watch", type=float, default=0,
                            help="Repeat every this many seconds instead of once.")

    def handle(self, *args: Any, watch: float, **options: Any) -> None:
        self.echo = not watch
        self.tidying = sweeping.Every(prune_every_seconds)  # the first pass, then every N s
        # a failed pass is logged, counted and retried with backoff; it never ends a watch
        # (under honcho, one process exiting stops them all)
        sweeping.watch("sweep_reviews", self.sweep, interval=watch)

    def report(self, level: int, text: str, **fields: Any) -> None:
        if self.echo:
            self.stdout.write(text)
        logger.log(level, text, extra=fields)

    def sweep(self) -> None:
        escalated = escalate_overdue()
        if escalated:
            if self.echo:
                self.stdout.write(f"escalated overdue reviews {escalated}")
            for review_id in escalated:  # one line each: the log is searched by review_id
                with log_context(review_id=review_id):
                    logger.warning("escalated overdue review %s (e-mail to ops, "
                                   "review.overdue webhook)", review_id,
                                   extra={"outcome": "escalated"})
        released = release_idle_claims()
        if released:
            self.report(logging.INFO, f"released claims on reviews {released}",
                        review_ids=released)
        stuck = requeue_stuck_deliveries()
        if stuck:
            self.report(logging.WARNING, f"queued stuck webhook deliveries {stuck} again",
                        delivery_ids=stuck)
        if self.tidying.due():
            tidied = tidy()
            if tidied:
                self.report(logging.INFO, f"deleted {tidied.idempotency_records} stored API "
                            f"response(s) and {tidied.sessions} expired session(s)")
