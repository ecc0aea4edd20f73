"""`bench.steal`: the stolen share of CPU time between two /proc/stat readings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import steal


def test_share_is_steal_over_all_ticks_between_readings() -> None:
    before = steal.CpuTimes(total=1_000, steal=40)
    after = steal.CpuTimes(total=1_400, steal=140)
    assert steal.steal_share(before, after) == pytest.approx(0.25)
    assert steal.describe(0.25) == "25%"


def test_no_share_without_two_readings_or_ticks() -> None:
    one = steal.CpuTimes(total=10, steal=1)
    assert steal.steal_share(None, one) is None
    assert steal.steal_share(one, one) is None
    assert steal.describe(None) == "not measured (no /proc/stat)"


def test_reads_the_machine_first_cpu_line(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 5 50 800 10 0 5 30 0 0\ncpu0 50 2 25 400 5 0 2 15 0 0\n")
    monkeypatch.setattr(steal, "_STAT", stat)
    assert steal.cpu_times() == steal.CpuTimes(total=1_000, steal=30)


def test_none_where_there_is_no_proc_stat(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setattr(steal, "_STAT", tmp_path / "missing")
    assert steal.cpu_times() is None
