"""`manage.py prune_threads --older-than-days N`: forget the checkpoints of finished threads
(`orchestration.runtime.retention`), keeping their audit records; prints what it freed.
`--export-dir DIR` writes each thread's JSON export (`export_thread`) there first, each file
readable by its owner only (0600), in a directory only its owner may enter (0700) if the
command creates it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.runtime.management.commands.export_thread import write_private
from orchestration.runtime.models import Thread
from orchestration.runtime.retention import (
    dumps,
    export_thread,
    prunable_threads,
    prune_after_days,
    prune_threads,
)


class Command(BaseCommand):
    help = ("Remove the checkpoints, field versions and pending writes of threads that finished "
            "(done, failed, cancelled) longer ago than the given age; keep their runs, events, "
            "reviews and decisions. Threads with an open review or an active run are never "
            "touched.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than-days", type=float, default=None, metavar="DAYS",
            help="age since the thread last changed (default STEPWISE_PRUNE_AFTER_DAYS)",
        )
        parser.add_argument("--dry-run", action="store_true",
                            help="report what would be freed, change nothing")
        parser.add_argument("--limit", type=int, default=None,
                            help="prune at most this many threads")
        parser.add_argument("--export-dir", type=Path, default=None, metavar="DIR",
                            help="write <thread_id>.json for each thread before pruning it")

    def handle(self, *args: Any, older_than_days: float | None, dry_run: bool,
               limit: int | None, export_dir: Path | None, **options: Any) -> None:
        days = older_than_days if older_than_days is not None else prune_after_days()
        if days is None:
            raise CommandError(
                "say how old a finished thread must be: --older-than-days N, or set "
                "STEPWISE_PRUNE_AFTER_DAYS"
            )
        if days < 0:
            raise CommandError("--older-than-days cannot be negative")
        age = timedelta(days=days)
        if export_dir is not None:
            if not export_dir.is_dir():  # one that exists keeps the mode its owner gave it
                export_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            for thread in Thread.objects.filter(pk__in=list(
                prunable_threads(age).values_list("pk", flat=True)[:limit]
            )):
                path = export_dir / f"{_safe(thread.thread_id)}.json"
                write_private(path, dumps(export_thread(thread)))
                self.stdout.write(f"exported {thread.thread_id} to {path}")
        report = prune_threads(older_than=age, dry_run=dry_run, limit=limit)
        self.stdout.write(report.summary())
        for thread_id in report.threads:
            self.stdout.write(f"  {thread_id}")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:150]
