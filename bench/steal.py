"""The share of CPU time the hypervisor gave to other guests ("steal", /proc/stat) while a
workload ran.

On a virtual machine whose host is oversubscribed, a sample's wall time includes moments
when neither the client nor the database server had a CPU. Seen on one 2-core machine: 7-35%
steal second by second (`vmstat 1`) during `--only django-pg-interrupt`, and the same
workload's Stepwise median moved between 3.6 and 6.6 ms from run to run, LangGraph's between
14 and 36 ms. The ratio of interleaved samples cancels load both sides share, not a stall
that lands inside one side's 20 ms sample; the report gives the share so that a reader can
tell a noisy run from a change in the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_STAT = Path("/proc/stat")
# user nice system idle iowait irq softirq steal (guest time is counted in user already)
_FIELDS = 8
_STEAL = 7


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """The machine's CPU time so far, in clock ticks: everything, and what was stolen."""

    total: int
    steal: int


def cpu_times() -> CpuTimes | None:
    """All CPUs' times from /proc/stat's first line; None where there is none (not Linux)."""
    try:
        first = _STAT.read_text().split("\n", 1)[0]
    except OSError:
        return None
    parts = first.split()
    if len(parts) <= _FIELDS or parts[0] != "cpu":
        return None
    values = [int(v) for v in parts[1 : _FIELDS + 1]]
    return CpuTimes(total=sum(values), steal=values[_STEAL])


def steal_share(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """The stolen share of the CPU time between two readings; None without both, or when
    no tick passed."""
    if before is None or after is None:
        return None
    total = after.total - before.total
    if total <= 0:
        return None
    return (after.steal - before.steal) / total


def describe(share: float | None) -> str:
    return "not measured (no /proc/stat)" if share is None else f"{share:.0%}"
