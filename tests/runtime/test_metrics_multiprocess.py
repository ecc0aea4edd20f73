"""prometheus-client's multiprocess mode: what a worker process counts shows up in the metrics
another process serves (`manage.py serve_metrics`, like a server's `/metrics`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from runtime_helpers import ROOT, subprocess_env, wait_for, wait_for_status

from bench.soak.cluster import spare_port
from orchestration.runtime.models import Run
from orchestration.runtime.runs import start_thread

pytestmark = pytest.mark.django_db(transaction=True)


def value(text: str, pattern: str) -> float:
    found = re.search("^" + pattern + r"\s+(\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_workers_counts_are_served_by_another_process(start_worker: Any,
                                                        tmp_path: Path) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    gate = tmp_path / "gate"
    gate.touch()
    worker = start_worker("stepwise_worker", PROMETHEUS_MULTIPROC_DIR=str(prom),
                          STEPWISE_LEASE_SECONDS="0.6")
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(gate)}, user=None)
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[worker])
    port = spare_port()
    env = subprocess_env() | {"PROMETHEUS_MULTIPROC_DIR": str(prom)}
    exporter = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "serve_metrics", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        def scrape() -> str | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                return None

        text = wait_for(scrape, timeout=30, what="the exporter to answer")
        assert value(text, r'stepwise_run_seconds_count\{graph="steps",outcome="succeeded"\}') == 1
        assert value(text, r'stepwise_superstep_seconds_count\{graph="steps"\}') >= 3
        assert value(text, r"stepwise_worker_heartbeats_total") >= 1
        assert value(text, r'stepwise_runs\{status="succeeded"\}') == 1
        assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)
        worker.stop()


def test_serve_metrics_needs_the_multiprocess_dir(monkeypatch: Any) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(CommandError, match="PROMETHEUS_MULTIPROC_DIR"):
        call_command("serve_metrics")
