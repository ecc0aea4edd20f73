"""What the harness's collection before each sample does to a workload's figures:

    python -m bench.cold_samples NAME [--samples 9]

The harness (`harness.gc_paused`) runs `gc.collect()` before every sample of every side, so
no sample pays for another's garbage. With Django, LangGraph and both savers loaded that
collection walks the whole heap (tens of milliseconds), and the sample after it starts with
cold caches. For each side of workload NAME this prints the median sample taken right after
the collection (as the bench takes it) and the median sample taken after one more, untimed,
run of the same side (warm), each with LangGraph's over Stepwise's. For the interrupt
workloads it also prints the time of each cycle by its position after the collection.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import nodes
from bench.__main__ import ALL_WORKLOADS, load_adapters, log, set_up_servers
from bench.workloads import LANGGRAPH, STEPWISE, Context


def sample(runner: Any, *, warm: bool) -> float:
    """One sample as the harness takes it after its collection, or after one more run."""
    gc.collect()
    if warm:
        runner.run()
    gc.disable()
    try:
        return float(runner.run())
    finally:
        gc.enable()


def cycles_by_position(runner: Any, count: int) -> list[float]:
    """ms of each interrupt cycle of one sample of `count` cycles after the collection."""
    gc.collect()
    gc.disable()
    try:
        times = []
        for _ in range(count):
            thread = runner.threads.next()
            start = time.perf_counter_ns()
            runner.adapter.invoke(runner.graph, nodes.ask_input(), thread)
            runner.adapter.resume(runner.graph, "yes", thread)
            times.append((time.perf_counter_ns() - start) / 1e6)
        return times
    finally:
        gc.enable()


def main(argv: list[str]) -> int:
    names = [w.name for w in ALL_WORKLOADS]
    parser = argparse.ArgumentParser(prog="python -m bench.cold_samples")
    parser.add_argument("name", choices=names)
    parser.add_argument("--samples", type=int, default=9)
    args = parser.parse_args(argv)
    workload = next(w for w in ALL_WORKLOADS if w.name == args.name)
    adapters, _ = load_adapters("async")
    with tempfile.TemporaryDirectory(prefix="stepwise-cold-") as tmp:
        ctx = Context(workdir=Path(tmp), quick=True, adapters=adapters)
        if workload.needs and not set_up_servers(ctx, [workload], []):
            print(f"{args.name}: its database is not available", file=sys.stderr)
            return 1
        runners = {side: workload.make(adapter, ctx, log) for side, adapter in adapters.items()}
        try:
            for runner in runners.values():
                runner.run()  # imports, caches, connections
            start = time.perf_counter()
            gc.collect()
            print(f"one gc.collect(): {(time.perf_counter() - start) * 1000:.1f} ms")
            for warm in (False, True):
                medians = {}
                for side, runner in runners.items():
                    values = [sample(runner, warm=warm) for _ in range(args.samples)]
                    medians[side] = statistics.median(values)
                label = "after one more run" if warm else "right after the collection"
                shown = ", ".join(f"{side} {value:.3g}" for side, value in medians.items())
                ratio = ""
                if STEPWISE in medians and LANGGRAPH in medians:
                    ratio = f", LangGraph / Stepwise {medians[LANGGRAPH] / medians[STEPWISE]:.2f}x"
                print(f"{label:28} {workload.unit}: {shown}{ratio}")
            if all(hasattr(r, "threads") and hasattr(r, "graph") for r in runners.values()) \
                    and "interrupt" in args.name:
                for side, runner in runners.items():
                    rows = [cycles_by_position(runner, 10) for _ in range(args.samples)]
                    by_position = [statistics.median(col) for col in zip(*rows, strict=True)]
                    print(f"{side:10} ms per cycle by position: "
                          + " ".join(f"{m:.2f}" for m in by_position))
        finally:
            for runner in runners.values():
                runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
