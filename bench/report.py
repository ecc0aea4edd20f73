"""Turns results into markdown: the summary table, per-side detail, and the machine they
were measured on; writes bench/results/latest.md and the marked block of docs/performance.md."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench import steal as cpu_steal
from bench.harness import SideResult
from bench.workloads import LANGGRAPH, STEPWISE, Check, Workload

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass
class WorkloadResult:
    workload: Workload
    sides: dict[str, SideResult]
    note: str = ""
    steal: float | None = None  # CPU steal while it ran (`bench.steal`)

    def median(self, side: str) -> float | None:
        result = self.sides.get(side)
        return result.median if result else None


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(result: WorkloadResult, numerator: str, denominator: str) -> float | None:
    top, bottom = result.median(numerator), result.median(denominator)
    if top is None or bottom is None or bottom == 0:
        return None
    return top / bottom


def check_met(result: WorkloadResult, check: Check) -> bool | None:
    if check.kind == "value_at_most":
        value = result.median(check.numerator)
        return None if value is None else value <= check.limit
    assert check.denominator is not None
    value = ratio(result, check.numerator, check.denominator)
    if value is None:
        return None
    return value >= check.limit if check.kind == "ratio_at_least" else value <= check.limit


def verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[met]


def target_text(check: Check) -> str:
    if check.kind == "ratio_at_least":
        return f"≥ {check.limit:g}x"
    if check.kind == "ratio_at_most":
        return f"{check.numerator} ≤ {check.limit:g}x {check.denominator}"
    return f"{check.numerator} ≤ {check.limit:g}"


def paired_ratios(result: WorkloadResult, numerator: str, denominator: str) -> list[float]:
    """Per-round ratios: both sides' i-th samples ran back to back, under the same load."""
    top, bottom = result.sides.get(numerator), result.sides.get(denominator)
    if not top or not bottom or len(top.samples) != len(bottom.samples):
        return []
    return [t / b for t, b in zip(top.samples, bottom.samples, strict=True) if b]


def paired_table(results: list[WorkloadResult]) -> str:
    lines = [
        "| workload | ratio | median of per-round ratios | IQR | ratio of best samples | rounds"
        " | CPU steal |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for result in results:
        pairs = [(LANGGRAPH, STEPWISE)] + [
            (c.numerator, c.denominator) for c in result.workload.checks
            if c.denominator == result.workload.baseline_label
        ]
        for top, bottom in pairs:
            values = paired_ratios(result, top, bottom)
            if len(values) < 2:
                continue
            if len(values) >= 4:
                q = statistics.quantiles(values, n=4)
            else:
                q = [min(values), 0.0, max(values)]
            # Noise only ever adds time, so the best samples show what a quiet machine gives.
            best = min(result.sides[top].samples) / min(result.sides[bottom].samples)
            lines.append(
                f"| {result.workload.name} | {top} / {bottom} | {fmt(statistics.median(values))}x"
                f" | {fmt(q[0])} – {fmt(q[2])} | {fmt(best)}x | {len(values)}"
                f" | {cpu_steal.describe(result.steal)} |"
            )
    return "\n".join(lines)


def summary_table(results: list[WorkloadResult], checkpoint_bytes: int) -> str:
    lines = [
        "| workload | unit | Stepwise | LangGraph | LangGraph / Stepwise | target | met |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for result in results:
        w = result.workload
        vs_lg = ratio(result, LANGGRAPH, STEPWISE)
        primary = [c for c in w.checks if c.denominator in (STEPWISE, None)]
        target = target_text(primary[0]) if primary else "(info)"
        met = verdict(check_met(result, primary[0])) if primary else ""
        lines.append(
            f"| {w.title} | {w.unit} | {fmt(result.median(STEPWISE))} | "
            f"{fmt(result.median(LANGGRAPH))} | {fmt(vs_lg)}x | {target} | {met} |"
        )
        for check in w.checks:
            raw = w.baseline_label
            if check.denominator != raw:
                continue
            raw_ratio = ratio(result, STEPWISE, raw)
            lines.append(
                f"| ↳ vs one {raw} INSERT+COMMIT of {checkpoint_bytes} B | {w.unit} | "
                f"{fmt(result.median(STEPWISE))} | raw: {fmt(result.median(raw))} | "
                f"Stepwise / raw = {fmt(raw_ratio)}x | ≤ {check.limit:g}x raw | "
                f"{verdict(check_met(result, check))} |"
            )
    return "\n".join(lines)


def detail_table(results: list[WorkloadResult]) -> str:
    lines = [
        "| workload | side | median | IQR (or min–max) | samples | error |",
        "| --- | --- | ---: | --- | ---: | --- |",
    ]
    for result in results:
        for side in result.sides.values():
            spread = side.spread
            spread_text = f"{fmt(spread[0])} – {fmt(spread[1])}" if spread else "—"
            error = (side.error or "").replace("|", "\\|")[:160]
            lines.append(
                f"| {result.workload.name} | {side.side} | {fmt(side.median)} | "
                f"{spread_text} | {len(side.samples)} | {error} |"
            )
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_block(
    versions: dict[str, str], command: str, load_before: tuple[float, ...], took_s: float,
    stolen: float | None = None,
) -> str:
    libs = {**versions, "msgpack": _version("msgpack"), "sqlite (library)": sqlite3.sqlite_version}
    load_after = os.getloadavg()
    rows = [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}` (took {took_s:.0f} s)",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores",
        f"- load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f}",
        f"- CPU steal (time the hypervisor gave other guests) during the run: "
        f"{cpu_steal.describe(stolen)}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
        "- libraries: " + ", ".join(f"{name} {ver}" for name, ver in libs.items()),
    ]
    return "\n".join(rows)


def render(
    results: list[WorkloadResult],
    machine: str,
    checkpoint_bytes: int,
    checkpoint_bytes_source: str,
    notes: list[str],
) -> str:
    parts = [
        "Medians of interleaved repetitions (lower is better; ratio > 1 means Stepwise is faster"
        " or smaller).",
        "",
        summary_table(results, checkpoint_bytes),
        "",
        f"Raw baseline row size: {checkpoint_bytes} B ({checkpoint_bytes_source}).",
        "",
        "Per-round ratios (the two sides' i-th samples ran back to back, under the same load):",
        "",
        paired_table(results),
        "",
        machine,
    ]
    if notes:
        parts += ["", *[f"- {note}" for note in notes]]
    return "\n".join(parts)


def write_json(path: Path, results: list[WorkloadResult], machine: str) -> None:
    """Every sample, for comparing runs with a script rather than by eye."""
    data = {
        "machine": machine,
        "steal": {r.workload.name: r.steal for r in results},
        "workloads": {
            r.workload.name: {
                "unit": r.workload.unit,
                "sides": {
                    side.side: {"median": side.median, "samples": side.samples, "error": side.error}
                    for side in r.sides.values()
                },
            }
            for r in results
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def write_latest(path: Path, body: str, results: list[WorkloadResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# Latest benchmark run\n\n{body}\n\n## Every side\n\n{detail_table(results)}\n"
    path.write_text(text)


DOC_TEMPLATE = f"""# Performance

Stepwise against LangGraph on the same workloads. Regenerate the measured block with
`python -m bench --write-docs`.

{BEGIN}
{END}
"""


def write_docs(path: Path, body: str) -> None:
    """Replace only the block between the markers, keeping the hand-written analysis."""
    text = path.read_text() if path.exists() else DOC_TEMPLATE
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")
