"""Interleaved repetitions: every side of a workload runs once per round, in a rotating order,
so machine noise (five other agents share these 2 cores) hits all sides alike."""

from __future__ import annotations

import gc
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol


class Runner(Protocol):
    """One side of one workload, set up and ready; `run()` returns one sample in the
    workload's unit and does its own timing, so setup never lands in the measure."""

    def run(self) -> float: ...

    def close(self) -> None: ...


RunnerFactory = Callable[[], Runner]


@dataclass
class SideResult:
    side: str
    samples: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def spread(self) -> tuple[float, float] | None:
        """Inter-quartile range, a noise indicator that ignores single outliers."""
        if len(self.samples) < 4:
            return (min(self.samples), max(self.samples)) if self.samples else None
        q = statistics.quantiles(self.samples, n=4)
        return (q[0], q[2])


@contextmanager
def gc_paused() -> Iterator[None]:
    """Same GC treatment for every side: a full collection first, none while measuring."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def elapsed_ns(fn: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - start


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] or []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def run_interleaved(
    factories: dict[str, RunnerFactory], reps: int, warmups: int, log: Callable[[str], None]
) -> dict[str, SideResult]:
    results = {side: SideResult(side) for side in factories}
    runners: dict[str, Runner] = {}
    for side, factory in factories.items():
        try:
            runners[side] = factory()
        except Exception as exc:  # a side that cannot set up is reported, not fatal
            results[side].error = _describe(exc)
            log(f"    {side}: setup failed: {results[side].error}")
    try:
        for _ in range(warmups):
            for side in list(runners):
                _sample(side, runners, results, log, keep=False)
        for rep in range(reps):
            order = list(runners)
            shift = rep % len(order) if order else 0
            for side in order[shift:] + order[:shift]:
                _sample(side, runners, results, log, keep=True)
    finally:
        for runner in runners.values():
            runner.close()
    return results


def _sample(
    side: str,
    runners: dict[str, Runner],
    results: dict[str, SideResult],
    log: Callable[[str], None],
    keep: bool,
) -> None:
    if side not in runners:
        return
    try:
        with gc_paused():
            value = runners[side].run()
    except Exception as exc:  # drop the side for the rest of this workload, say why
        results[side].error = _describe(exc)
        log(f"    {side}: failed: {results[side].error}")
        runners.pop(side).close()
        return
    if keep:
        results[side].samples.append(value)
