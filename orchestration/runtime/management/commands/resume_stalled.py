"""Find runs whose worker stopped renewing its lease, mark them stalled and queue them again;
and queued runs that no task will ever pick up, and enqueue them again.

`--mark-only` leaves the decision to resume stalled runs to ops (the ops console shows them
and pushes the change live); `--watch SECONDS` keeps sweeping, so a stall surfaces on its own.
Lost queued runs are always re-queued (nothing ran yet, so there is nothing for ops to judge).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from orchestration.runtime.errors import RunError
from orchestration.runtime.leases import expired_runs, orphan_grace_seconds, orphaned_runs
from orchestration.runtime.models import Run
from orchestration.runtime.runs import declare_stalled, requeue_orphan, resume_stalled


class Command(BaseCommand):
    help = (
        "Mark running runs whose lease expired as stalled and queue them again; each continues "
        "from its last checkpoint on the next free worker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=float, default=0.0, metavar="SECONDS",
            help="only runs whose lease expired at least this many seconds ago (default 0)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="list the runs, change nothing"
        )
        parser.add_argument(
            "--mark-only", action="store_true",
            help="mark them stalled (ops see them and decide) without queueing them again",
        )
        parser.add_argument(
            "--watch", type=float, default=0.0, metavar="SECONDS",
            help="sweep again every SECONDS until interrupted (default: sweep once)",
        )
        parser.add_argument(
            "--orphan-grace", type=float, default=None, metavar="SECONDS",
            help="re-queue queued runs without a waiting task once they are this old "
            "(default STEPWISE_ORPHAN_GRACE_SECONDS, 30)",
        )
        parser.add_argument(
            "--reason", default="lease expired: worker stopped renewing it",
            help="recorded on each run's events",
        )

    def handle(self, *args: Any, older_than: float, dry_run: bool, mark_only: bool,
               watch: float, reason: str, orphan_grace: float | None, **options: Any) -> None:
        grace = orphan_grace_seconds() if orphan_grace is None else orphan_grace
        while True:
            self.sweep(older_than=older_than, dry_run=dry_run, mark_only=mark_only,
                       reason=reason, quiet=bool(watch))
            self.sweep_orphans(grace=grace, dry_run=dry_run, quiet=bool(watch))
            if not watch:
                return
            close_old_connections()  # a long-lived loop must not keep a broken connection
            time.sleep(watch)

    def sweep(self, *, older_than: float, dry_run: bool, mark_only: bool, reason: str,
              quiet: bool) -> None:
        runs = expired_runs(older_than=older_than)
        if not runs:
            if not quiet:
                self.stdout.write("no stalled runs")
            return
        for run in runs:
            line = (
                f"run {run.pk} of thread {run.thread.thread_id} ({run.thread.graph_name}): "
                f"worker {run.worker or '?'}, lease expired {run.lease_expires_at:%H:%M:%S}"
            )
            if dry_run:
                self.stdout.write(f"would resume {line}")
                continue
            # Conditional update: a worker that renewed in the meantime keeps its run.
            if not declare_stalled(run, reason=reason, older_than=older_than):
                self.stdout.write(f"skipped {line} (renewed or finished meanwhile)")
                continue
            if mark_only:
                self.stdout.write(self.style.WARNING(f"stalled {line}"))
                continue
            self.resume(run, line, reason)

    def resume(self, run: Run, line: str, reason: str) -> None:
        try:
            resume_stalled(run, reason=reason)
        except RunError as exc:
            self.stderr.write(f"could not resume run {run.pk}: {exc}")
            return
        self.stdout.write(self.style.SUCCESS(f"resumed {line}"))

    def sweep_orphans(self, *, grace: float, dry_run: bool, quiet: bool) -> None:
        runs = orphaned_runs(grace=grace)
        if not runs and not quiet:
            self.stdout.write("no lost queued runs")
        for run in runs:
            line = (
                f"run {run.pk} of thread {run.thread.thread_id} ({run.thread.graph_name}): "
                f"queued at {run.created_at:%H:%M:%S}, no task will pick it up"
            )
            if dry_run:
                self.stdout.write(f"would re-queue {line}")
                continue
            try:
                requeue_orphan(run, reason="queued run had no task: enqueued again", grace=grace)
            except RunError as exc:  # claimed or re-queued meanwhile
                self.stdout.write(f"skipped {line} ({exc})")
                continue
            self.stdout.write(self.style.SUCCESS(f"re-queued {line}"))
