"""`manage.py sweep_reviews [--watch SECONDS]`: escalate overdue reviews (once each) and
return idle claims to the pool."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections

from approvals.notify import escalate_overdue, release_idle_claims

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = ("Escalate reviews past their due time (e-mail to ops, review.overdue webhook) and "
            "return reviews claimed longer than STEPWISE_CLAIM_IDLE_SECONDS to the pool.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--watch", type=float, default=0,
                            help="Repeat every this many seconds instead of once.")

    def handle(self, *args: Any, watch: float, **options: Any) -> None:
        while True:
            try:
                escalated = escalate_overdue()
                if escalated:
                    self.stdout.write(f"escalated overdue reviews {escalated}")
                released = release_idle_claims()
                if released:
                    self.stdout.write(f"released claims on reviews {released}")
            except DatabaseError:
                if not watch:
                    raise
                # the database restarting: a watching sweeper waits for it, it does not die
                # (under honcho, one process exiting stops them all)
                logger.warning("sweep failed; trying again in %ss", watch, exc_info=True)
            if not watch:
                return
            close_old_connections()  # a long-lived loop must not keep a broken connection
            time.sleep(watch)
