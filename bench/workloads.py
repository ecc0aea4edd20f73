"""The workloads, written once against `Adapter`, and the targets each is judged by.

Every runner does its setup in `__init__` (untimed) and times only the engine call in `run()`.
Each workload checks the engine really did the work (counts, answers) so a broken side fails
loudly instead of looking fast.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench import nodes
from bench.adapters import Adapter
from bench.harness import Runner
from bench.raw_sqlite import RawInsertRunner, disk_bytes

STEPWISE, LANGGRAPH, RAW = "Stepwise", "LangGraph", "raw sqlite3"


@dataclass
class Context:
    workdir: Path
    quick: bool
    adapters: dict[str, Adapter]
    # Bytes one Stepwise SQLite checkpoint of the linear graph adds to the file; the raw
    # baseline inserts rows of this size. Set by `calibrate_checkpoint_bytes`.
    checkpoint_bytes: int = 256
    checkpoint_bytes_source: str = "default (Stepwise unavailable)"
    # The database servers and Django setup for the Django-saver workloads (bench.databases).
    servers: Any = None
    _files: itertools.count = field(default_factory=itertools.count)

    def db_path(self, label: str) -> Path:
        return self.workdir / f"{label}-{next(self._files)}.db"


class WrongResult(RuntimeError):
    """The engine returned something other than what the workload must produce."""


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise WrongResult(
            f"{what}: the engine did not do the workload's work, fix it before timing it"
        )


class _ThreadIds:
    def __init__(self) -> None:
        self._ids = itertools.count()

    def next(self) -> str:
        return f"bench-{next(self._ids)}"


class LinearRunner:
    """µs per superstep of a 50-node chain: whole invoke time / 50 supersteps."""

    def __init__(self, adapter: Adapter, ctx: Context, sqlite: bool, loops: int) -> None:
        self.adapter, self.loops = adapter, loops
        self.saver = (
            adapter.sqlite_saver(str(ctx.db_path(f"linear-{adapter.label}")))
            if sqlite
            else adapter.memory_saver()
        )
        self.graph = adapter.linear(self.saver)
        self.threads = _ThreadIds()
        self.checked = False

    def run(self) -> float:
        total = 0
        for _ in range(self.loops):
            thread = self.threads.next()
            start = time.perf_counter_ns()
            state = self.adapter.invoke(self.graph, nodes.linear_input(), thread)
            total += time.perf_counter_ns() - start
            expect(state["counter"] == nodes.LINEAR_NODES, f"linear counter is {state}")
        if not self.checked:  # once, outside the timing: a checkpoint per superstep was stored
            stored = len(self.adapter.saver_list(self.saver, thread))
            expect(stored > nodes.LINEAR_NODES, f"{stored} checkpoints stored for 50 supersteps")
            self.checked = True
        return total / (self.loops * nodes.LINEAR_NODES) / 1_000

    def close(self) -> None:
        self.adapter.close_saver(self.saver)


class FanoutRunner:
    """µs per task: 20 rounds of dispatch -> 10 Send workers -> join, in-memory saver."""

    def __init__(self, adapter: Adapter, ctx: Context) -> None:
        self.adapter = adapter
        self.saver = adapter.memory_saver()
        self.graph = adapter.fanout(self.saver)
        self.threads = _ThreadIds()

    def run(self) -> float:
        thread = self.threads.next()
        start = time.perf_counter_ns()
        state = self.adapter.invoke(self.graph, nodes.fanout_input(), thread)
        elapsed = time.perf_counter_ns() - start
        expect(
            state["joins"] == nodes.FANOUT_ROUNDS
            and len(state["results"]) == nodes.FANOUT_ROUNDS * nodes.FANOUT_WIDTH,
            f"fan-out ran {state['joins']} joins and {len(state['results'])} workers",
        )
        return elapsed / nodes.FANOUT_TASKS / 1_000

    def close(self) -> None:
        self.adapter.close_saver(self.saver)


def build_append_thread(adapter: Adapter, path: Path) -> tuple[Any, Any, str, int]:
    """Runs the 300-superstep 1 KB append thread; returns saver, graph, thread, elapsed ns."""
    saver = adapter.sqlite_saver(str(path))
    graph = adapter.appender(saver, nodes.append_payloads())
    start = time.perf_counter_ns()
    state = adapter.invoke(graph, nodes.append_input(), "append")
    elapsed = time.perf_counter_ns() - start
    expect(len(state["items"]) == nodes.APPEND_STEPS, f"appended {len(state['items'])} items")
    return saver, graph, "append", elapsed


class AppendStorageRunner:
    """Bytes on disk (file + WAL after a TRUNCATE checkpoint) per appended payload byte."""

    def __init__(self, adapter: Adapter, ctx: Context, log: Callable[[str], None]) -> None:
        self.adapter, self.ctx, self.log = adapter, ctx, log

    def run(self) -> float:
        path = self.ctx.db_path(f"append-{self.adapter.label}")
        saver, _, _, elapsed = build_append_thread(self.adapter, path)
        self.adapter.close_saver(saver)
        size = disk_bytes(path)
        took = elapsed / 1e9
        self.log(f"    {self.adapter.label}: {size:,} bytes on disk, run took {took:.2f} s")
        return size / (nodes.APPEND_STEPS * nodes.APPEND_BYTES)

    def close(self) -> None:
        pass


class HistoryRunner:
    """ms to list the whole history of the 300-checkpoint append thread.

    Each sample opens a new saver on the file, as a web process reading what a worker wrote
    would: a saver's in-process cache of what it wrote itself never helps the listing."""

    def __init__(self, adapter: Adapter, ctx: Context, level: Literal["graph", "saver"]) -> None:
        self.adapter, self.level = adapter, level
        self.path = ctx.db_path(f"history-{adapter.label}")
        saver, _, self.thread, _ = build_append_thread(adapter, self.path)
        adapter.close_saver(saver)
        self.payloads = nodes.append_payloads()

    def run(self) -> float:
        saver = self.adapter.sqlite_saver(str(self.path))
        graph = self.adapter.appender(saver, self.payloads)
        try:
            start = time.perf_counter_ns()
            if self.level == "graph":
                history = self.adapter.history(graph, self.thread)
            else:
                history = self.adapter.saver_list(saver, self.thread)
            elapsed = time.perf_counter_ns() - start
        finally:
            self.adapter.close_saver(saver)
        expect(len(history) > nodes.APPEND_STEPS, f"history has {len(history)} entries")
        return elapsed / 1e6

    def close(self) -> None:
        pass


class InterruptRunner:
    """ms per cycle: invoke until `interrupt`, then resume with an answer (SQLite saver)."""

    def __init__(self, adapter: Adapter, ctx: Context, loops: int) -> None:
        self.adapter, self.loops = adapter, loops
        self.saver = adapter.sqlite_saver(str(ctx.db_path(f"interrupt-{adapter.label}")))
        self.graph = adapter.asker(self.saver)
        self.threads = _ThreadIds()

    def run(self) -> float:
        total = 0
        for _ in range(self.loops):
            thread = self.threads.next()
            start = time.perf_counter_ns()
            paused = self.adapter.invoke(self.graph, nodes.ask_input(), thread)
            done = self.adapter.resume(self.graph, "yes", thread)
            total += time.perf_counter_ns() - start
            expect(paused.get("answer") == "", f"the run did not pause: {paused}")
            expect(done["answer"] == "yes", f"the resumed run ended with {done}")
        return total / self.loops / 1e6

    def close(self) -> None:
        self.adapter.close_saver(self.saver)


CheckKind = Literal["ratio_at_least", "ratio_at_most", "value_at_most"]


@dataclass(frozen=True)
class Check:
    """A target: `numerator / denominator >= limit`, `<= limit`, or `numerator <= limit`."""

    kind: CheckKind
    numerator: str
    limit: float
    denominator: str | None = None

    def describe(self) -> str:
        if self.kind == "ratio_at_least":
            return f"{self.numerator}/{self.denominator} ≥ {self.limit:g}x"
        if self.kind == "ratio_at_most":
            return f"{self.numerator}/{self.denominator} ≤ {self.limit:g}x"
        return f"{self.numerator} ≤ {self.limit:g}"


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    unit: str
    make: Callable[[Adapter, Context, Callable[[str], None]], Runner]
    checks: tuple[Check, ...]
    reps: int
    quick_reps: int
    warmups: int = 2
    baseline: Callable[[Context], Runner] | None = None
    baseline_label: str = RAW
    # "postgresql" or "sqlite": a Django-saver workload, run only when that server and Django
    # could be set up (bench.databases).
    needs: str | None = None


def beats_langgraph(factor: float) -> Check:
    return Check("ratio_at_least", LANGGRAPH, factor, STEPWISE)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "linear-memory",
        "50-node linear graph, in-memory saver",
        "µs/superstep",
        lambda a, ctx, log: LinearRunner(a, ctx, sqlite=False, loops=10),
        (beats_langgraph(10),),
        reps=41,
        quick_reps=5,
    ),
    Workload(
        "linear-sqlite",
        "50-node linear graph, SQLite saver",
        "µs/superstep",
        lambda a, ctx, log: LinearRunner(a, ctx, sqlite=True, loops=4),
        (beats_langgraph(10), Check("ratio_at_most", STEPWISE, 3, RAW)),
        reps=31,
        quick_reps=5,
        baseline=lambda ctx: RawInsertRunner(ctx.db_path("raw"), ctx.checkpoint_bytes),
    ),
    Workload(
        "fanout",
        "10-way Send fan-out + join, 20 rounds, in-memory saver",
        "µs/task",
        lambda a, ctx, log: FanoutRunner(a, ctx),
        (beats_langgraph(5),),
        reps=31,
        quick_reps=5,
    ),
    Workload(
        "append-storage",
        "300 supersteps appending 1 KB to a list, SQLite",
        "disk B/appended B",
        lambda a, ctx, log: AppendStorageRunner(a, ctx, log),
        (Check("value_at_most", STEPWISE, 2),),
        reps=1,
        quick_reps=1,
        warmups=0,
    ),
    Workload(
        "history",
        "get_state_history of the 300-checkpoint thread, SQLite",
        "ms",
        lambda a, ctx, log: HistoryRunner(a, ctx, "graph"),
        (beats_langgraph(10),),
        reps=15,
        quick_reps=3,
        warmups=1,
    ),
    Workload(
        "history-saver",
        "saver.list of the same thread (saver level only)",
        "ms",
        lambda a, ctx, log: HistoryRunner(a, ctx, "saver"),
        (),
        reps=11,
        quick_reps=3,
        warmups=1,
    ),
    Workload(
        "interrupt",
        "interrupt, then resume with an answer, SQLite",
        "ms/cycle",
        lambda a, ctx, log: InterruptRunner(a, ctx, loops=10),
        (beats_langgraph(10),),
        reps=31,
        quick_reps=5,
    ),
)


def calibrate_checkpoint_bytes(ctx: Context) -> None:
    """Measure how many bytes one Stepwise SQLite checkpoint of the linear graph adds to the
    file, so the raw baseline writes rows of the same size."""
    adapter = ctx.adapters.get(STEPWISE)
    if adapter is None:
        return
    path = ctx.db_path("calibrate")
    runs = 4
    saver = adapter.sqlite_saver(str(path))
    graph = adapter.linear(saver)
    adapter.invoke(graph, nodes.linear_input(), "warm")  # tables, first pages
    before = disk_bytes(path)
    for i in range(runs):
        adapter.invoke(graph, nodes.linear_input(), f"calibrate-{i}")
    after = disk_bytes(path)
    adapter.close_saver(saver)
    checkpoints = runs * (nodes.LINEAR_NODES + 1)
    ctx.checkpoint_bytes = max(1, round((after - before) / checkpoints))
    ctx.checkpoint_bytes_source = (
        f"Stepwise SQLite file growth over {checkpoints} linear-graph checkpoints"
    )
