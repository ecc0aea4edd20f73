"""`python -m bench [--quick] [--only NAME ...] [--write-docs]`: run every workload on Stepwise
and LangGraph (interleaved), print the markdown table and save it to bench/results/latest.md.

The `django-*` workloads run Stepwise's Django saver on PostgreSQL (found or started like
bin/test does) and on SQLite, against LangGraph's PostgresSaver and SqliteSaver."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench import steal
from bench.adapters import Adapter, EngineUnavailable
from bench.agent_workloads import AGENT_WORKLOADS
from bench.databases import prepare
from bench.db_workloads import DB_WORKLOADS, PG
from bench.harness import RunnerFactory, run_interleaved
from bench.langgraph_side import LangGraphAdapter
from bench.report import (
    WorkloadResult,
    machine_block,
    render,
    write_docs,
    write_json,
    write_latest,
)
from bench.workloads import WORKLOADS, Context, Workload, calibrate_checkpoint_bytes

ALL_WORKLOADS: tuple[Workload, ...] = (*WORKLOADS, *AGENT_WORKLOADS, *DB_WORKLOADS)

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = [w.name for w in ALL_WORKLOADS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this workload (repeatable): {', '.join(names)}",
    )
    parser.add_argument("--reps", type=int, help="override every workload's repetitions")
    parser.add_argument(
        "--lg-durability",
        choices=["async", "sync", "exit"],
        default="async",
        help="LangGraph's durability mode (its default is async)",
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="also update docs/performance.md's table"
    )
    args = parser.parse_args(argv)
    if args.write_docs and args.only:
        parser.error(
            "--write-docs replaces the whole table in docs/performance.md; run every "
            "workload (drop --only) when writing it"
        )
    return args


def load_adapters(lg_durability: str) -> tuple[dict[str, Adapter], list[str]]:
    from bench.stepwise_side import StepwiseAdapter  # imports the engine, which may be missing

    adapters: dict[str, Adapter] = {}
    notes: list[str] = []
    for make in (StepwiseAdapter, lambda: LangGraphAdapter(lg_durability)):
        try:
            adapter = make()
        except EngineUnavailable as exc:
            notes.append(str(exc))
            log(f"skipping: {exc}")
            continue
        adapters[adapter.label] = adapter
    return adapters, notes


def factories(workload: Workload, ctx: Context) -> dict[str, RunnerFactory]:
    made: dict[str, RunnerFactory] = {
        label: (lambda a=adapter: workload.make(a, ctx, log))
        for label, adapter in ctx.adapters.items()
    }
    if workload.baseline is not None:
        made[workload.baseline_label] = lambda: workload.baseline(ctx)  # type: ignore[misc]
    return made


def run_workload(workload: Workload, ctx: Context, reps_override: int | None) -> WorkloadResult:
    reps = reps_override or (workload.quick_reps if ctx.quick else workload.reps)
    warmups = min(workload.warmups, 1) if ctx.quick else workload.warmups
    log(f"{workload.name}: {reps} reps, {warmups} warm-up")
    start, cpu_before = time.perf_counter(), steal.cpu_times()
    sides = run_interleaved(factories(workload, ctx), reps, warmups, log)
    stolen = steal.steal_share(cpu_before, steal.cpu_times())
    log(
        f"  done in {time.perf_counter() - start:.1f} s: "
        + ", ".join(
            f"{s.side} {s.median:.3g}" if s.median is not None else f"{s.side} failed"
            for s in sides.values()
        )
        + f"; CPU steal {steal.describe(stolen)}"
    )
    return WorkloadResult(workload, sides, steal=stolen)


def set_up_servers(ctx: Context, selected: list[Workload], notes: list[str]) -> list[Workload]:
    """Prepare PostgreSQL and Django for the Django-saver workloads; drop (and say so) those
    whose server is missing."""
    needs = {w.needs for w in selected if w.needs}
    if not needs:
        return selected
    servers = prepare(ctx.workdir, want_postgres=PG in needs)
    for note in servers.notes:
        log(note)
    notes.extend(servers.notes)
    ctx.servers = servers
    available = {"sqlite": servers.django, PG: servers.django and servers.postgres}
    skipped = [w.name for w in selected if w.needs and not available[w.needs]]
    if skipped:
        notes.append(f"skipped (server unavailable): {', '.join(skipped)}")
    return [w for w in selected if w.name not in skipped]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command = "python -m bench" + ("" if not argv else " " + shlex.join(argv))
    load_before, cpu_before = os.getloadavg(), steal.cpu_times()
    started = time.perf_counter()
    adapters, notes = load_adapters(args.lg_durability)
    notes.append(
        f"LangGraph durability={args.lg_durability!r}; both SQLite savers run with "
        "journal_mode=WAL, synchronous=NORMAL (LangGraph's setup() only sets WAL)."
    )
    selected = [w for w in ALL_WORKLOADS if not args.only or w.name in args.only]
    with tempfile.TemporaryDirectory(prefix="stepwise-bench-") as tmp:
        ctx = Context(workdir=Path(tmp), quick=args.quick, adapters=adapters)
        selected = set_up_servers(ctx, selected, notes)
        if any(w.baseline for w in selected):
            calibrate_checkpoint_bytes(ctx)
        results = [run_workload(w, ctx, args.reps) for w in selected]
    versions: dict[str, str] = {}
    for adapter in adapters.values():
        versions.update(adapter.versions())
    stolen = steal.steal_share(cpu_before, steal.cpu_times())
    machine = machine_block(
        versions, command, load_before, time.perf_counter() - started, stolen
    )
    body = render(results, machine, ctx.checkpoint_bytes, ctx.checkpoint_bytes_source, notes)
    print(body)
    write_latest(ROOT / "bench" / "results" / "latest.md", body, results)
    write_json(ROOT / "bench" / "results" / "latest.json", results, machine)
    if args.write_docs:
        write_docs(ROOT / "docs" / "performance.md", body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
