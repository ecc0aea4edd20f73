"""Find runs whose worker stopped renewing its lease, mark them stalled and queue them again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from orchestration.leases import expired_runs
from orchestration.runs import RunError, mark_as_stalled, resume_stalled


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
            "--reason", default="lease expired: worker stopped renewing it",
            help="recorded on each run's events",
        )

    def handle(self, *args: Any, older_than: float, dry_run: bool, reason: str,
               **options: Any) -> None:
        runs = expired_runs(older_than=older_than)
        if not runs:
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
            if not mark_as_stalled(run, reason=reason, older_than=older_than):
                self.stdout.write(f"skipped {line} (renewed or finished meanwhile)")
                continue
            try:
                resume_stalled(run, reason=reason)
            except RunError as exc:
                self.stderr.write(f"could not resume run {run.pk}: {exc}")
                continue
            self.stdout.write(self.style.SUCCESS(f"resumed {line}"))
