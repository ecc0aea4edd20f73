"""`manage.py expire_claims [--watch SECONDS]`: return idle claims to the pool."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from approvals.notify import release_idle_claims


class Command(BaseCommand):
    help = ("Return reviews claimed longer than STEPWISE_CLAIM_IDLE_SECONDS ago to the pool "
            "(recorded in each thread's history).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--watch", type=float, default=0,
                            help="Repeat every this many seconds instead of once.")

    def handle(self, *args: Any, watch: float, **options: Any) -> None:
        while True:
            released = release_idle_claims()
            if released:
                self.stdout.write(f"released claims on reviews {released}")
            if not watch:
                return
            time.sleep(watch)
