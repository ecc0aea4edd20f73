"""Prometheus metrics: what processes count as it happens, and what the database says at
scrape time.

Two kinds, on purpose:

- **Events counted by the process that saw them** (decisions in a server, supersteps and
  runs in a worker, stalls and recoveries in the sweeper): prometheus-client counters and
  histograms. With several processes on one machine, set `PROMETHEUS_MULTIPROC_DIR` (an
  empty directory, wiped when the process group starts: `bin/demo` and `bin/serve` do)
  before any of them starts: each process then writes its samples to files there and
  `/metrics` adds them up (prometheus-client's multiprocess mode). Without it, `/metrics`
  shows only the serving process's own counters.
- **Cluster state read from the database at scrape time** (`DatabaseCollector`): queue
  depth, runs by status, worker heartbeats (and, from the review app, open and overdue
  reviews: `approvals.health.ReviewCollector`). These are the same
  whichever process or machine is scraped, so they never need adding up; a handful of
  indexed aggregate queries per scrape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "DECISIONS", "RUN_SECONDS", "RUNS_AUTO_RESUMED", "RUNS_NEEDS_OPS", "RUNS_STALLED",
    "SUPERSTEP_SECONDS", "SWEEPER_ERRORS", "TASKS_LOST", "WORKER_ERRORS", "WORKER_HEARTBEATS",
    "DatabaseCollector", "Stopwatch",
    "multiprocess_dir", "render",
]

# Reviews take people seconds to days; supersteps and attempts take machines milliseconds to
# minutes: buckets for the latter.
_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

DECISIONS = Counter("stepwise_decisions", "Decisions recorded on reviews", ["action"])
SUPERSTEP_SECONDS = Histogram(
    "stepwise_superstep_seconds", "Time a worker spent on one superstep", ["graph"],
    buckets=_FAST,
)
RUN_SECONDS = Histogram(
    "stepwise_run_seconds", "Time from a worker claiming a run to recording how it ended",
    ["graph", "outcome"], buckets=_FAST,
)
RUNS_STALLED = Counter("stepwise_runs_stalled", "Runs declared stalled (lease expired)")
RUNS_AUTO_RESUMED = Counter(
    "stepwise_runs_auto_resumed", "Stalled runs resumed by the sweeper's policy", ["graph"]
)
RUNS_NEEDS_OPS = Counter(
    "stepwise_runs_needs_ops", "Stalled runs the sweeper gave up on (failed, needs ops)",
    ["graph"],
)
WORKER_HEARTBEATS = Counter("stepwise_worker_heartbeats", "Worker heartbeats written")
# A watching sweeper survives a failed pass (`sweeping.watch`): this is how ops see it failing.
# kind: "database" (unreachable, expected to pass) or "unexpected" (a bug or a bad setting).
SWEEPER_ERRORS = Counter(
    "stepwise_sweeper_errors", "Sweeper passes that failed (the sweeper went on)",
    ["sweeper", "kind"],
)

# A worker survives an error outside a task's own execution (claiming, recording a result, the
# wake-up wait): `stepwise_worker._loop`. kind: "database" (unreachable) or "unexpected".
WORKER_ERRORS = Counter(
    "stepwise_worker_errors", "Errors a worker survived outside a task's own execution",
    ["kind"],
)
# Task rows whose worker died (`lost_tasks`): outcome "requeued" (its work queued again) or
# "failed" (finished as WorkerLost only: nothing to redo, or not declared safe to redo).
TASKS_LOST = Counter(
    "stepwise_tasks_lost", "Running task rows of dead workers finished by the sweeper",
    ["task", "outcome"],
)


class DatabaseCollector(Collector):
    """Gauges read from the database when `/metrics` is scraped."""

    def collect(self) -> Iterator[Any]:
        from datetime import timedelta

        from django.db.models import Count
        from django.utils import timezone
        from django_tasks_db.models import DBTaskResult

        from orchestration.runtime.healing import needs_ops_q
        from orchestration.runtime.models import Run, WorkerProcess
        from orchestration.runtime.workers import stale_after_seconds

        now = timezone.now()
        queue = GaugeMetricFamily(
            "stepwise_task_queue_depth", "Tasks waiting for a worker", labels=["queue"]
        )
        # due now (the library's `ready()`: READY, and run_after unset or past), not a webhook
        # retry due in an hour; every known queue has a series, 0 when empty, so an alert on
        # it has a value to compare and a graph drops to 0 instead of ending
        depth = dict.fromkeys(sorted(known_queues()), 0)
        depth.update(DBTaskResult.objects.ready().order_by().values_list("queue_name")
                     .annotate(n=Count("pk")))
        for name, n in depth.items():
            queue.add_metric([name], n)
        yield queue

        runs = GaugeMetricFamily("stepwise_runs", "Runs by status", labels=["status"])
        counted = dict(Run.objects.values_list("status").annotate(n=Count("pk")))
        for status in Run.Status.values:
            runs.add_metric([status], counted.get(status, 0))
        yield runs
        yield GaugeMetricFamily(
            "stepwise_runs_needing_ops", "Failed runs the sweeper gave up on, not yet retried",
            value=Run.objects.filter(needs_ops_q()).count(),
        )

        stale = now - timedelta(seconds=stale_after_seconds())
        recent = now - timedelta(hours=1)  # long-gone workers drop off the per-worker gauge
        ages = GaugeMetricFamily(
            "stepwise_worker_heartbeat_age_seconds", "Seconds since a worker last said it lives",
            labels=["worker"],
        )
        alive = 0
        per_queue = dict.fromkeys(depth, 0)  # the queues with a depth series
        for worker_id, seen, taken in WorkerProcess.objects.filter(
            last_seen_at__gte=recent, stopped_at__isnull=True
        ).values_list("worker_id", "last_seen_at", "queues"):
            ages.add_metric([worker_id], (now - seen).total_seconds())
            if seen >= stale:
                alive += 1
                for name in per_queue if taken == "*" else taken.split(","):
                    per_queue[name] = per_queue.get(name, 0) + 1
        yield ages
        yield GaugeMetricFamily("stepwise_workers_alive",
                                "Workers with a heartbeat fresher than the stale limit",
                                value=alive)
        # alert on depth > 0 with no worker of its queue: runs or notifications stand still
        serving = GaugeMetricFamily("stepwise_queue_workers_alive",
                                    "Live workers taking each task queue", labels=["queue"])
        for name, n in sorted(per_queue.items()):
            serving.add_metric([name], n)
        yield serving


def known_queues() -> set[str]:
    """The task queues a worker may be asked to serve: the default one and those the TASKS
    backends name (`QUEUES`)."""
    from django.tasks import DEFAULT_TASK_QUEUE_NAME, task_backends

    names = {DEFAULT_TASK_QUEUE_NAME}
    for backend in task_backends.all():
        names.update(getattr(backend, "queues", ()) or ())
    return names


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render(*extra: Collector) -> tuple[bytes, str]:
    """The exposition text for one scrape: this machine's process counters (all processes in
    multiprocess mode), the runtime's database gauges, and `extra` collectors (the review
    app adds its own)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        for collector in _own_collectors():
            registry.register(collector)
    registry.register(DatabaseCollector())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _own_collectors() -> list[Any]:
    return [DECISIONS, SUPERSTEP_SECONDS, RUN_SECONDS, RUNS_STALLED, RUNS_AUTO_RESUMED,
            RUNS_NEEDS_OPS, WORKER_HEARTBEATS, SWEEPER_ERRORS, WORKER_ERRORS, TASKS_LOST]


class Stopwatch:
    """Seconds between laps (monotonic clock): one superstep, one attempt."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def lap(self) -> float:
        now = time.monotonic()
        took, self.started = now - self.started, now
        return took
