"""Find runs whose worker stopped renewing its lease, mark them stalled and queue them again;
and queued runs that no task will ever pick up, and enqueue them again.

`--mark-only` leaves the decision to resume stalled runs to ops (the ops console shows them
and pushes the change live); `--auto` resumes them within each graph's stall policy
(`orchestration.runtime.healing`: backoff, max attempts, then "needs ops"); `--watch SECONDS`
keeps sweeping, so a stall surfaces on its own. A worker that dies is noticed within one
lease if the sweep interval is at most a third of STEPWISE_LEASE_SECONDS (its last renewal
was at most a third of a lease before it died): `--watch auto` picks that interval.
`--prune` also runs the retention of `prune_threads` (STEPWISE_PRUNE_AFTER_DAYS) and of the
task queue's finished rows (STEPWISE_TASK_RESULTS_KEEP_DAYS) every
STEPWISE_PRUNE_EVERY_SECONDS.
Lost queued runs are always re-queued (nothing ran yet, so there is nothing for ops to judge),
and so are the other tasks of dead workers that are declared to need it (webhook deliveries,
e-mails: `orchestration.runtime.lost_tasks`); their rows are finished as `WorkerLost`.

What it does goes to the log (`logging`: JSON lines in production), at WARNING for a stall, a
re-queued run or a lost task, ERROR for a run that needs ops or could not be resumed, INFO for
the rest, each with the `run_id` and `thread_id` of the run (`logcontext`). A single sweep
(no `--watch`: a person at a terminal, a cron job) also prints readable lines on stdout, and
`--dry-run` only prints them: it changes nothing, so there is nothing to log.
"""

from __future__ import annotations

import argparse
import logging
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.runtime import sweeping
from orchestration.runtime.errors import GraphRegistryError, RunError
from orchestration.runtime.healing import heal_stalled
from orchestration.runtime.leases import (
    expired_runs,
    lease_seconds,
    orphan_grace_seconds,
    orphaned_runs,
)
from orchestration.runtime.logcontext import log_context
from orchestration.runtime.lost_tasks import lost_rows, sweep_lost_tasks
from orchestration.runtime.models import Run
from orchestration.runtime.registry import stall_policy
from orchestration.runtime.retention import prune_after_days, prune_every_seconds, prune_threads
from orchestration.runtime.runs import declare_stalled, requeue_orphan, resume_stalled
from orchestration.runtime.task_retention import prune_task_results, task_results_keep_days

logger = logging.getLogger(__name__)


def _heals(graph_name: str) -> bool:
    try:
        return stall_policy(graph_name).enabled
    except GraphRegistryError:  # a broken policy (manage.py check says which): tell ops
        return False


def _interval(raw: str) -> float:
    """SECONDS, or 'auto' (returned as -1: resolved once settings are loaded)."""
    if raw == "auto":
        return -1.0
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a number of seconds or 'auto'") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the interval cannot be negative")
    return value


class Command(BaseCommand):
    auto = False
    echo = True  # readable lines on stdout (a single sweep or --dry-run; not a --watch loop)
    logs = True  # and to the log (not --dry-run)
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
            "--auto", action="store_true",
            help="resume stalled runs per their graph's STEPWISE_STALL_POLICY (backoff, max "
            "attempts, then failed as needs-ops); graphs that opt out are left to ops",
        )
        parser.add_argument(
            "--watch", type=_interval, default=0.0, metavar="SECONDS",
            help="sweep again every SECONDS until interrupted (default: sweep once); 'auto' "
            "is a sixth of STEPWISE_LEASE_SECONDS (a dead worker is noticed within a lease)",
        )
        parser.add_argument(
            "--prune", action="store_true",
            help="also prune finished threads (prune_threads) when STEPWISE_PRUNE_AFTER_DAYS "
            "is set, and the task queue's rows finished STEPWISE_TASK_RESULTS_KEEP_DAYS ago "
            "(14), every STEPWISE_PRUNE_EVERY_SECONDS",
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
               watch: float, reason: str, orphan_grace: float | None, auto: bool = False,
               prune: bool = False, **options: Any) -> None:
        if auto and mark_only:
            raise CommandError("--auto and --mark-only contradict each other: pick one")
        grace = orphan_grace_seconds() if orphan_grace is None else orphan_grace
        if watch < 0:
            watch = lease_seconds() / 6
        self.auto = auto
        self.echo = not watch or dry_run
        self.logs = not dry_run
        pruning = sweeping.Every(prune_every_seconds)  # the first sweep, then every N seconds

        def one_pass() -> None:
            self.sweep(older_than=older_than, dry_run=dry_run, mark_only=mark_only or auto,
                       reason=reason, quiet=bool(watch))
            if auto and not dry_run:
                self.heal(quiet=bool(watch))
            self.sweep_orphans(grace=grace, dry_run=dry_run, quiet=bool(watch))
            self.sweep_lost_tasks(dry_run=dry_run)
            if prune and pruning.due():
                self.prune(dry_run=dry_run)

        # a failed pass is logged, counted and retried with backoff; it never ends a watch
        sweeping.watch("resume_stalled", one_pass, interval=watch)

    def report(self, level: int, text: str, *, style: Any = None, run: Run | None = None,
               run_id: int | None = None, thread_id: str | None = None,
               **fields: Any) -> None:
        """One thing the sweeper did (or, with --dry-run, would do): logged at `level` with
        the run's ids, and printed on stdout when a person or a cron job is reading it."""
        if self.echo:
            self.stdout.write(style(text) if style is not None else text)
        if self.logs:
            if run is not None:
                run_id, thread_id = run.pk, run.thread.thread_id
            with log_context(run_id=run_id, thread_id=thread_id):
                logger.log(level, text, extra=fields)

    def heal(self, *, quiet: bool) -> None:
        for healed in heal_stalled():
            line = f"run {healed.run_id} of thread {healed.thread_id}: {healed.detail}"
            ids = {"run_id": healed.run_id, "thread_id": healed.thread_id,
                   "outcome": healed.outcome, "attempt": healed.attempt}
            if healed.outcome == "resumed":
                self.report(logging.INFO, f"resumed {line}", style=self.style.SUCCESS, **ids)
            elif healed.outcome in ("needs_ops", "error"):
                self.report(logging.ERROR, f"{healed.outcome.replace('_', ' ')} {line}",
                            style=self.style.ERROR, **ids)
            elif not quiet:
                self.report(logging.DEBUG, line, **ids)

    def prune(self, *, dry_run: bool) -> None:
        days = prune_after_days()
        if days is not None:
            report = prune_threads(older_than=timedelta(days=days), dry_run=dry_run)
            if report.threads:
                self.report(logging.INFO, report.summary(), threads=len(report.threads))
        keep = task_results_keep_days()
        if keep is not None:
            tasks = prune_task_results(older_than=timedelta(days=keep), dry_run=dry_run)
            if tasks:
                verb = "would delete" if dry_run else "deleted"
                self.report(logging.INFO, f"{verb} {tasks} task row(s) finished more than "
                            f"{keep:g} day(s) ago", task_rows=tasks)

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
                self.report(logging.INFO, f"would resume {line}", run=run)
                continue
            # Conditional update: a worker that renewed in the meantime keeps its run.
            # in --auto mode ops hear of a stall only when the policy gives up (or is off)
            notify = not (self.auto and _heals(run.thread.graph_name))
            if not declare_stalled(run, reason=reason, older_than=older_than, notify=notify):
                self.report(logging.INFO, f"skipped {line} (renewed or finished meanwhile)",
                            run=run)
                continue
            if mark_only:
                self.report(logging.WARNING, f"stalled {line}", style=self.style.WARNING,
                            run=run, outcome="stalled", worker_id=run.worker)
                continue
            self.resume(run, line, reason)

    def resume(self, run: Run, line: str, reason: str) -> None:
        try:
            resume_stalled(run, reason=reason)
        except RunError as exc:
            if self.echo:
                self.stderr.write(f"could not resume run {run.pk}: {exc}")
            if self.logs:
                with log_context(run_id=run.pk, thread_id=run.thread.thread_id):
                    logger.error("could not resume stalled run %s: %s", run.pk, exc)
            return
        # a stall and its resume in one line (without --auto or --mark-only): a warning
        self.report(logging.WARNING, f"resumed {line}", style=self.style.SUCCESS, run=run,
                    outcome="resumed", worker_id=run.worker)

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
                self.report(logging.INFO, f"would re-queue {line}", run=run)
                continue
            try:
                requeue_orphan(run, reason="queued run had no task: enqueued again", grace=grace)
            except RunError as exc:  # claimed or re-queued meanwhile
                self.report(logging.INFO, f"skipped {line} ({exc})", run=run)
                continue
            self.report(logging.WARNING, f"re-queued {line}", style=self.style.SUCCESS,
                        run=run, outcome="requeued")

    def sweep_lost_tasks(self, *, dry_run: bool) -> None:
        if dry_run:
            for row, why in lost_rows():
                self.report(logging.INFO, f"would finish task {row.pk} ({row.task_path}): {why}")
            return
        for lost in sweep_lost_tasks():
            line = f"task {lost.task_id} ({lost.task_path}) of lost worker {lost.worker}"
            style = self.style.SUCCESS if lost.outcome == "requeued" else self.style.WARNING
            self.report(logging.WARNING, f"finished {line}: {lost.detail}", style=style,
                        task_id=lost.task_id, task_path=lost.task_path, worker_id=lost.worker,
                        outcome=lost.outcome)
