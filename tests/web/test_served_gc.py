"""The served ASGI process freezes its start-up objects out of the garbage collector's scans and
collects young garbage less often (config.asgi.tune_gc)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc
before = gc.get_threshold()[0]
import config.asgi
print(before, gc.get_threshold()[0], gc.get_freeze_count())
"""


def _probe(**env: str) -> list[int]:
    clean = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120,
                         env={**clean, "DEBUG": "1", **env})
    return [int(x) for x in out.stdout.split()[-3:]]


def test_served_process_freezes_app_objects_and_raises_gen0_threshold() -> None:
    from config.asgi import GC_GEN0_THRESHOLD

    default, tuned, frozen = _probe()
    assert default == 700
    assert tuned == GC_GEN0_THRESHOLD
    # Django, the URL patterns, the graphs...: far more than a bare interpreter's objects
    assert frozen > 50_000


def test_test_processes_keep_the_collector_as_it_is() -> None:
    default, tuned, frozen = _probe(PYTEST_VERSION="8")
    assert tuned == default
    assert frozen < 5_000  # what the interpreter itself holds there, not the app
