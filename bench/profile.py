"""`python -m bench.profile NAME [--side Stepwise|LangGraph] [--runs N] [--py-spy]`: one
workload under cProfile (main thread only) or py-spy (every thread, so nodes that run in
worker threads count too), printing the hottest functions and each file's share of time."""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from bench.__main__ import ALL_WORKLOADS, load_adapters, log, set_up_servers
from bench.harness import gc_paused
from bench.workloads import STEPWISE, Context


def file_shares(stats: pstats.Stats, top: int) -> list[tuple[str, float]]:
    """Own time (tottime) summed per source file, as a fraction of the whole profile."""
    per_file: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        per_file[_short(filename)] += tottime
        total += tottime
    ranked = sorted(per_file.items(), key=lambda item: -item[1])[:top]
    return [(name, share / total) for name, share in ranked] if total else []


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.12/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _frame_key(frame: str) -> str:
    """`fn (path/file.py:123)` -> `fn (file.py)`: aggregate per function, not per line."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{name} ({_short(path)})"


# Not the measured work: a pool thread blocked on its empty work queue (py-spy does not
# always see it as idle), and the harness's full collection before each sample.
_IDLE_LEAVES = {"_worker (concurrent/futures/thread.py)", "gc_paused (bench/harness.py)"}


def summarize_collapsed(path: Path, top: int) -> None:
    """Self and inclusive share per function from py-spy's collapsed stacks, leaving out
    imports and runner setup (they are not the measured work)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    per_file: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or "_find_and_load" in stack or "__init__ (bench/workloads.py" in stack:
            continue
        count = int(count_text)
        frames = [_frame_key(f) for f in stack.split(";")]
        if frames[-1] in _IDLE_LEAVES:
            continue
        total += count
        own[frames[-1]] += count
        per_file[frames[-1].split(" (", 1)[1].rstrip(")")] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"## {total} samples\n\n## own time per file")
    for name, count in per_file.most_common(15):
        print(f"{count / total:6.1%}  {name}")
    print("\n## own time per function")
    for name, count in own.most_common(top):
        print(f"{count / total:6.1%}  {name}")
    print("\n## inclusive time per function")
    for name, count in inclusive.most_common(top):
        print(f"{count / total:6.1%}  {name}")


def run_py_spy(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="stepwise-spy-") as tmp:
        out = Path(tmp) / "stacks.txt"
        command = [
            sys.executable,
            "-m",
            "bench.profile",
            args.name,
            "--side",
            args.side,
            "--runs",
            str(args.runs),
            "--no-profile",
        ]
        spy = [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "-f",
            "raw",
            "-r",
            "250",
            "-o",
            str(out),
            "--",
        ]
        subprocess.run(spy + command, check=True, capture_output=True)
        summarize_collapsed(out, args.top)
    return 0


def main(argv: list[str]) -> int:
    names = [w.name for w in ALL_WORKLOADS]
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("name", choices=names)
    parser.add_argument("--side", default=STEPWISE)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    parser.add_argument("--py-spy", action="store_true", help="sample every thread with py-spy")
    parser.add_argument("--no-profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.py_spy:
        return run_py_spy(args)
    workload = next(w for w in ALL_WORKLOADS if w.name == args.name)
    adapters, _ = load_adapters("async")
    if args.side not in adapters:
        print(f"{args.side} is not available: {sorted(adapters)}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="stepwise-profile-") as tmp:
        ctx = Context(workdir=Path(tmp), quick=True, adapters=adapters)
        if workload.needs and not set_up_servers(ctx, [workload], []):
            print(f"{args.name}: its database is not available", file=sys.stderr)
            return 1
        runner = workload.make(adapters[args.side], ctx, log)
        runner.run()  # warm-up outside the profile
        if args.no_profile:  # py-spy samples this process from outside
            for _ in range(args.runs):
                with gc_paused():  # as in the benchmark: no collection inside a sample
                    runner.run()
            runner.close()
            return 0
        profiler = cProfile.Profile()
        for _ in range(args.runs):
            with gc_paused():
                profiler.enable()
                runner.run()
                profiler.disable()
        runner.close()
    stats = pstats.Stats(profiler)
    print("## own time per file")
    for name, share in file_shares(stats, 15):
        print(f"{share:6.1%}  {name}")
    print(f"\n## top {args.top} functions by {args.sort}")
    stats.sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
