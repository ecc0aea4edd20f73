"""Where the web app runs: Stepwise's Django saver (as a worker uses it: every write fenced by a
run lease) on PostgreSQL and on SQLite, side by side with LangGraph's PostgresSaver and
SqliteSaver, plus the floor of each server: one raw INSERT + COMMIT of a checkpoint-sized row.

The "Stepwise" side of these workloads is the Django saver; the "LangGraph" side is the
official saver for the same server. Workloads are written against a `Kit`: how to open a
saver on the store, and how many bytes the store holds.
"""

from __future__ import annotations

import inspect
import itertools
import os
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from bench import nodes
from bench.adapters import Adapter
from bench.databases import (
    DJANGO_DB,
    LANGGRAPH_DB,
    PG_ALIAS,
    RAW_DB,
    SQLITE_ALIAS,
    Servers,
    pg_relation_bytes,
)
from bench.harness import Runner
from bench.raw_sqlite import INSERTS_PER_SAMPLE, RawInsertRunner, disk_bytes
from bench.workloads import (
    RAW,
    STEPWISE,
    Check,
    Context,
    Workload,
    beats_langgraph,
    expect,
)

RAW_PG = "raw psycopg"
PG, SQLITE = "postgresql", "sqlite"
# The Django saver's durability, as a worker runs it (tasks._durability): write-behind
# ("async") on PostgreSQL, "sync" on SQLite; BENCH_DJANGO_DURABILITY=sync|async forces one.
DURABILITY = os.environ.get("BENCH_DJANGO_DURABILITY", "")
# ... and its puts' commits on PostgreSQL, as a worker makes them (tasks._synchronous_commit):
# without waiting for the WAL flush; BENCH_DJANGO_SYNCHRONOUS_COMMIT=1 makes them wait.
SYNCHRONOUS_COMMIT = os.environ.get("BENCH_DJANGO_SYNCHRONOUS_COMMIT", "0") == "1"
DJANGO_TABLES = ("orchestration_checkpoint", "orchestration_fieldversion",
                 "orchestration_pendingwrite")
LANGGRAPH_PG_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


class Kit(Protocol):
    def open(self) -> Any: ...

    def close(self, saver: Any) -> None: ...

    def stored_bytes(self) -> int: ...


class DjangoKit:
    """Django savers on one database alias, fenced by one claimed run's lease (the fence is a
    conditional update of that run, as in a worker)."""

    def __init__(self, alias: str, servers: Servers) -> None:
        from django.utils import timezone

        from orchestration.runtime.models import Run, Thread

        self.alias, self.servers = alias, servers
        thread = Thread.objects.using(alias).create(thread_id=f"bench-lease-{uuid.uuid4().hex}")
        self.token = uuid.uuid4().hex
        self.run = Run.objects.using(alias).create(
            thread=thread, kind=Run.Kind.START, status=Run.Status.RUNNING,
            lease_token=self.token, lease_expires_at=timezone.now() + timedelta(hours=1),
            attempts=1,
        )

    def open(self) -> Any:
        from orchestration.runtime.leases import Lease
        from orchestration.runtime.savers import DjangoCheckpointSaver

        lease = Lease(run_id=self.run.pk, token=self.token, seconds=3600.0)
        parameters = inspect.signature(DjangoCheckpointSaver).parameters
        if "durability" in parameters:  # as a worker runs it (tasks.execute_run)
            durability = DURABILITY or ("async" if self.alias == PG_ALIAS else "sync")
            options: dict[str, Any] = {"durability": durability}
            if "synchronous_commit" in parameters:
                options["synchronous_commit"] = SYNCHRONOUS_COMMIT
            return DjangoCheckpointSaver(lease=lease, using=self.alias, **options)
        if "lease" in parameters:
            return DjangoCheckpointSaver(lease=lease, using=self.alias)
        return DjangoCheckpointSaver(fence=self._fence(lease), using=self.alias)

    def _fence(self, lease: Any) -> Callable[[], None]:
        """The lease's fence on this kit's alias (Lease.fence itself uses "default")."""
        from django.utils import timezone

        from orchestration.runtime.leases import LeaseLost
        from orchestration.runtime.models import Run

        def fence() -> None:
            now = timezone.now()
            renewed = Run.objects.using(self.alias).filter(
                pk=lease.run_id, lease_token=lease.token, status=Run.Status.RUNNING
            ).update(lease_expires_at=now + timedelta(seconds=lease.seconds), heartbeat_at=now)
            if not renewed:
                raise LeaseLost(lease.run_id, lease.token)

        return fence

    def close(self, saver: Any) -> None:
        pass

    def stored_bytes(self) -> int:
        if self.alias == PG_ALIAS:
            return pg_relation_bytes(self.servers.pg_url(DJANGO_DB), DJANGO_TABLES)
        from django.db import connections

        return disk_bytes(Path(str(connections[SQLITE_ALIAS].settings_dict["NAME"])))


class LangGraphPgKit:
    def __init__(self, servers: Servers) -> None:
        self.url = servers.pg_url(LANGGRAPH_DB)
        saver = self.open()
        saver.setup()
        self.close(saver)

    def open(self) -> Any:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        # The connection settings LangGraph's docs give for PostgresSaver.
        conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=0,
                               row_factory=dict_row)
        return PostgresSaver(conn)

    def close(self, saver: Any) -> None:
        saver.conn.close()

    def stored_bytes(self) -> int:
        return pg_relation_bytes(self.url, LANGGRAPH_PG_TABLES)


class LangGraphSqliteKit:
    def __init__(self, adapter: Adapter, path: Path) -> None:
        self.adapter, self.path = adapter, path

    def open(self) -> Any:
        return self.adapter.sqlite_saver(str(self.path))

    def close(self, saver: Any) -> None:
        self.adapter.close_saver(saver)

    def stored_bytes(self) -> int:
        return disk_bytes(self.path) if self.path.exists() else 0


def kit_for(adapter: Adapter, ctx: Context, server: str) -> Kit:
    servers: Servers = ctx.servers  # type: ignore[attr-defined]
    if adapter.label == STEPWISE:
        return DjangoKit(PG_ALIAS if server == PG else SQLITE_ALIAS, servers)
    if server == PG:
        return LangGraphPgKit(servers)
    return LangGraphSqliteKit(adapter, ctx.db_path(f"lg-{server}"))


class _Threads:
    """Thread ids unique to one runner: the Django sides share one database per server."""

    _runners = itertools.count()

    def __init__(self) -> None:
        self.prefix = f"r{next(self._runners)}-{uuid.uuid4().hex[:6]}"
        self._ids = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}-{next(self._ids)}"


class DbLinearRunner:
    """µs per superstep of the 50-node chain, whole invoke / 50."""

    def __init__(self, adapter: Adapter, kit: Kit, loops: int) -> None:
        self.adapter, self.kit, self.loops = adapter, kit, loops
        self.saver = kit.open()
        self.graph = adapter.linear(self.saver)
        self.threads = _Threads()

    def run(self) -> float:
        total = 0
        for _ in range(self.loops):
            thread = self.threads.next()
            start = time.perf_counter_ns()
            state = self.adapter.invoke(self.graph, nodes.linear_input(), thread)
            total += time.perf_counter_ns() - start
            expect(state["counter"] == nodes.LINEAR_NODES, f"linear counter is {state}")
        stored = len(self.adapter.saver_list(self.saver, thread))
        expect(stored > nodes.LINEAR_NODES, f"{stored} checkpoints stored for 50 supersteps")
        return total / (self.loops * nodes.LINEAR_NODES) / 1_000

    def close(self) -> None:
        self.kit.close(self.saver)


class DbInterruptRunner:
    """ms per cycle: invoke until `interrupt`, then resume with an answer.

    `as_worker`: Stepwise's saver is told, before the first invoke, that the thread is new
    (`no_head_next`), as a worker tells it for a new thread's first run (`tasks.py`: the
    claimed thread row has no head), so that invoke reads no head. LangGraph's savers have
    no such call, and its runtime reads the head of every run."""

    def __init__(self, adapter: Adapter, kit: Kit, loops: int, as_worker: bool = False) -> None:
        self.adapter, self.kit, self.loops = adapter, kit, loops
        self.saver = kit.open()
        self.graph = adapter.asker(self.saver)
        self.threads = _Threads()
        self.hint = as_worker and hasattr(self.saver, "no_head_next")

    def run(self) -> float:
        total = 0
        for _ in range(self.loops):
            thread = self.threads.next()
            start = time.perf_counter_ns()
            if self.hint:
                self.saver.no_head_next(thread)
            paused = self.adapter.invoke(self.graph, nodes.ask_input(), thread)
            done = self.adapter.resume(self.graph, "yes", thread)
            total += time.perf_counter_ns() - start
            expect(paused.get("answer") == "", f"the run did not pause: {paused}")
            expect(done["answer"] == "yes", f"the resumed run ended with {done}")
        return total / self.loops / 1e6

    def close(self) -> None:
        self.kit.close(self.saver)


def _append_thread(adapter: Adapter, kit: Kit, thread: str) -> None:
    saver = kit.open()
    try:
        graph = adapter.appender(saver, nodes.append_payloads())
        state = adapter.invoke(graph, nodes.append_input(), thread)
    finally:
        kit.close(saver)
    expect(len(state["items"]) == nodes.APPEND_STEPS, f"appended {len(state['items'])} items")


class DbHistoryRunner:
    """ms for get_state_history of the 300-checkpoint append thread, through a saver opened
    for the sample (a reader's cold view, not the writer's cache)."""

    def __init__(self, adapter: Adapter, kit: Kit) -> None:
        self.adapter, self.kit = adapter, kit
        self.thread = _Threads().next()
        _append_thread(adapter, kit, self.thread)
        self.payloads = nodes.append_payloads()

    def run(self) -> float:
        saver = self.kit.open()
        graph = self.adapter.appender(saver, self.payloads)
        try:
            start = time.perf_counter_ns()
            history = self.adapter.history(graph, self.thread)
            elapsed = time.perf_counter_ns() - start
        finally:
            self.kit.close(saver)
        expect(len(history) > nodes.APPEND_STEPS, f"history has {len(history)} entries")
        return elapsed / 1e6

    def close(self) -> None:
        pass


class DbStorageRunner:
    """Bytes the store grew by (tables + indexes + TOAST on PostgreSQL; file + WAL after a
    TRUNCATE checkpoint on SQLite) per appended payload byte."""

    def __init__(self, adapter: Adapter, kit: Kit, log: Callable[[str], None]) -> None:
        self.adapter, self.kit, self.log = adapter, kit, log

    def run(self) -> float:
        before = self.kit.stored_bytes()
        _append_thread(self.adapter, self.kit, _Threads().next())
        grown = self.kit.stored_bytes() - before
        self.log(f"    {self.adapter.label}: store grew by {grown:,} bytes")
        return grown / (nodes.APPEND_STEPS * nodes.APPEND_BYTES)

    def close(self) -> None:
        pass


class RawPgInsertRunner:
    """µs per INSERT + COMMIT (one autocommit statement) of a checkpoint-sized row, psycopg."""

    def __init__(self, url: str, payload_bytes: int) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS checkpoints (thread_id text, checkpoint_id text, "
            "parent_id text, data bytea, PRIMARY KEY (thread_id, checkpoint_id))"
        )
        self.payload = os.urandom(payload_bytes)
        self.ids = itertools.count()

    def run(self) -> float:
        conn, payload = self.conn, self.payload
        thread = f"t{next(self.ids)}"
        parent = None
        start = time.perf_counter_ns()
        for i in range(INSERTS_PER_SAMPLE):
            checkpoint_id = f"{i:024d}"
            conn.execute(
                "INSERT INTO checkpoints VALUES (%s, %s, %s, %s)",
                (thread, checkpoint_id, parent, payload),
            )
            parent = checkpoint_id
        return (time.perf_counter_ns() - start) / INSERTS_PER_SAMPLE / 1_000

    def close(self) -> None:
        self.conn.close()


def _raw_pg(ctx: Context) -> Runner:
    return RawPgInsertRunner(ctx.servers.pg_url(RAW_DB), ctx.checkpoint_bytes)  # type: ignore[attr-defined]


def _raw_sqlite(ctx: Context) -> Runner:
    return RawInsertRunner(ctx.db_path("raw-django"), ctx.checkpoint_bytes)


def _server_workloads(server: str) -> tuple[Workload, ...]:
    on_pg = server == PG
    name = "pg" if on_pg else "sqlite"
    where = "PostgreSQL" if on_pg else "SQLite"
    versus = "PostgresSaver" if on_pg else "SqliteSaver"
    raw_label = RAW_PG if on_pg else RAW
    raw = _raw_pg if on_pg else _raw_sqlite
    lg = (lambda factor: (beats_langgraph(factor),)) if on_pg else (lambda factor: ())

    def kit(a: Adapter, ctx: Context) -> Kit:
        return kit_for(a, ctx, server)

    return (
        Workload(
            f"django-{name}-linear",
            f"50-node linear graph, Django saver on {where} vs {versus}",
            "µs/superstep",
            lambda a, ctx, log: DbLinearRunner(a, kit(a, ctx), loops=2),
            (*lg(5), Check("ratio_at_most", STEPWISE, 3, raw_label)),
            reps=15, quick_reps=3, warmups=1, baseline=raw, baseline_label=raw_label,
            needs=server,
        ),
        Workload(
            f"django-{name}-interrupt",
            f"interrupt, then resume, Django saver on {where} vs {versus}",
            "ms/cycle",
            lambda a, ctx, log: DbInterruptRunner(a, kit(a, ctx), loops=5),
            lg(5), reps=15, quick_reps=3, warmups=1, needs=server,
        ),
        *((Workload(
            "django-pg-interrupt-worker",
            "the same cycle as a worker runs a new thread (its first run reads no head) vs "
            "PostgresSaver",
            "ms/cycle",
            lambda a, ctx, log: DbInterruptRunner(a, kit(a, ctx), loops=5, as_worker=True),
            (), reps=15, quick_reps=3, warmups=1, needs=server,
        ),) if on_pg else ()),
        Workload(
            f"django-{name}-history",
            f"get_state_history of a 300-checkpoint thread, Django saver on {where} vs {versus}",
            "ms",
            lambda a, ctx, log: DbHistoryRunner(a, kit(a, ctx)),
            lg(10), reps=9, quick_reps=3, warmups=1, needs=server,
        ),
        Workload(
            f"django-{name}-storage",
            f"300 supersteps appending 1 KB, Django saver on {where} vs {versus}",
            "stored B/appended B",
            lambda a, ctx, log: DbStorageRunner(a, kit(a, ctx), log),
            (Check("value_at_most", STEPWISE, 2.5),) if on_pg else (),
            reps=1, quick_reps=1, warmups=0, needs=server,
        ),
    )


DB_WORKLOADS: tuple[Workload, ...] = (*_server_workloads(PG), *_server_workloads(SQLITE))
