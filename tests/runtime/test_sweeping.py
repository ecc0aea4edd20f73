"""A watching sweeper outlives a failed pass (`orchestration.runtime.sweeping`): under honcho a
sweeper that exits stops the whole serving profile."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from runtime_helpers import ROOT, subprocess_env, wait_for

from orchestration.runtime import metrics
from orchestration.runtime.signalflag import SignalFlag
from orchestration.runtime.sweeping import MAX_BACKOFF_SECONDS, Every, backoff, watch


def errors(sweeper: str, kind: str) -> float:
    return metrics.SWEEPER_ERRORS.labels(sweeper, kind)._value.get()


def test_backoff_doubles_from_the_interval_up_to_a_ceiling() -> None:
    assert backoff(2, 0) == 2
    assert [backoff(2, n) for n in (1, 2, 3)] == [4, 8, 16]
    assert backoff(2, 30) == MAX_BACKOFF_SECONDS
    assert backoff(600, 3) == 600  # never shorter than the interval itself


def test_a_failed_pass_is_logged_counted_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    passes: list[str] = []
    outcomes = iter(["bug", "database", "ok", "stop"])

    def sweep() -> None:
        outcome = next(outcomes)
        passes.append(outcome)
        if outcome == "bug":
            raise KeyError("a row the sweeper did not expect")
        if outcome == "database":
            raise OperationalError("server closed the connection unexpectedly")
        if outcome == "stop":
            stop.set()

    before = errors("test-loop", "unexpected"), errors("test-loop", "database")
    with caplog.at_level(logging.WARNING, logger="orchestration.runtime.sweeping"):
        watch("test-loop", sweep, interval=0.01, stop=stop)
    assert passes == ["bug", "database", "ok", "stop"]
    assert errors("test-loop", "unexpected") == before[0] + 1
    assert errors("test-loop", "database") == before[1] + 1
    bug = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert "unexpected error" in bug.getMessage()
    assert bug.exc_info is not None and bug.exc_info[0] is KeyError  # the traceback goes out
    assert any(r.levelno == logging.WARNING and r.exc_info for r in caplog.records)


def test_a_database_outage_keeps_the_interval_so_stalls_heal_once_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    outcomes = iter(["database"] * 4 + ["stop"])

    def sweep() -> None:
        if next(outcomes) == "stop":
            stop.set()
            return
        raise OperationalError("connection refused")

    with caplog.at_level(logging.WARNING, logger="orchestration.runtime.sweeping"):
        watch("test-outage", sweep, interval=0.01, stop=stop)
    waits = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(waits) == 4
    assert all(w.endswith("trying again in 0.01s") for w in waits), waits


def test_a_single_sweep_still_raises() -> None:
    def sweep() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        watch("test-once", sweep, interval=0)


def test_keyboard_interrupt_ends_the_loop() -> None:
    def sweep() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        watch("test-interrupt", sweep, interval=0.01)


@pytest.mark.django_db(transaction=True)
def test_a_watching_resume_stalled_survives_a_bad_setting_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """A real process with a real fault: STEPWISE_PRUNE_AFTER_DAYS that is not a number made
    every pruning pass raise ValueError, which ended the process (and, under honcho, the
    profile). Now: ERROR lines with the traceback as JSON, a counter in /metrics' files, the
    process still sweeping, and SIGTERM ends it at once with status 0."""
    prom = tmp_path / "prom"
    prom.mkdir()
    log = tmp_path / "sweeper.log"
    env = subprocess_env() | {
        "STEPWISE_PRUNE_AFTER_DAYS": "soon", "STEPWISE_PRUNE_EVERY_SECONDS": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(prom), "LOG_FORMAT": "json",
    }
    sweeper = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "resume_stalled", "--auto", "--prune",
         "--watch", "0.05"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        def failed_twice() -> bool:
            return log.read_text().count("unexpected error") >= 2

        wait_for(failed_twice, timeout=40, what="two failed passes")
        assert sweeper.poll() is None, log.read_text()[-3000:]
        sweeper.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert sweeper.wait(timeout=10) == 0
        assert time.monotonic() - started < 5  # not after a backoff sleep
    finally:
        if sweeper.poll() is None:
            sweeper.kill()
            sweeper.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines()
             if line.startswith("{") and "unexpected error" in line]
    assert lines[0]["level"] == "ERROR"
    assert "ValueError" in lines[0]["exc_info"] and "soon" in lines[0]["exc_info"]
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(prom))
    text = generate_latest(registry).decode()
    found = re.search(
        r'^stepwise_sweeper_errors_total\{kind="unexpected",sweeper="resume_stalled"\} (\S+)$',
        text, re.MULTILINE)
    assert found and float(found.group(1)) >= 2, text


@pytest.mark.django_db(transaction=True)
def test_a_watching_sweep_reviews_survives_a_bad_setting_and_stops_on_sigterm(
    settings: Any,
) -> None:
    """In this process: a claim-idle setting that is not a number made every pass raise
    TypeError; the loop goes on until SIGTERM, which ends it without an exception."""
    from django.core.management import call_command

    settings.STEPWISE_CLAIM_IDLE_SECONDS = "half an hour"
    before = errors("sweep_reviews", "unexpected")

    def terminate_after_two_failures() -> None:
        deadline = time.monotonic() + 30
        while errors("sweep_reviews", "unexpected") < before + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=terminate_after_two_failures)
    killer.start()
    call_command("sweep_reviews", "--watch", "0.01")
    killer.join()
    assert errors("sweep_reviews", "unexpected") >= before + 2
    assert signal.getsignal(signal.SIGTERM) == previous  # the loop's handler is gone again


def test_a_periodic_step_is_due_on_the_first_pass_then_once_its_seconds_have_gone_by():
    """Retention in both sweepers (`resume_stalled --prune`, `sweep_reviews`): on the first
    pass, then every STEPWISE_PRUNE_EVERY_SECONDS, read at each pass."""
    seconds = [3600.0]
    step = Every(lambda: seconds[0])
    assert step.due()
    assert not step.due() and not step.due()
    seconds[0] = 0.0  # the setting changed: due at the next pass
    assert step.due()


def test_two_sigterms_at_any_moment_stop_the_loop_every_time(tmp_path: Path) -> None:
    """honcho signals the process group and bin/serve-worker passes SIGTERM on: a sweeper gets
    two, milliseconds apart. Its handler set a threading.Event, whose lock the interrupted
    loop (or the first handler) may hold: an ops trial saw the sweeper hang until SIGKILL.
    100 rounds in a child process, two SIGTERMs at random moments of each; every round ends."""
    script = tmp_path / "twice.py"
    script.write_text(
        "import os, random, signal, threading, time\n"
        "import django\n"
        "django.setup()\n"
        "from orchestration.runtime.sweeping import watch\n"
        "signal.signal(signal.SIGTERM, lambda *a: None)  # one landing after a round ended\n"
        "def twice():\n"
        "    time.sleep(random.uniform(0.0005, 0.004))\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(random.uniform(0, 0.002))\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "for _ in range(100):\n"
        "    t = threading.Thread(target=twice, daemon=True)\n"
        "    t.start()\n"
        "    watch('stress', lambda: None, interval=0.0005)\n"
        "    t.join()\n"
        "print('all stopped', flush=True)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1",
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "all stopped" in done.stdout, done.stderr[-2000:]


def test_a_signal_flag_wakes_its_waiter_promptly() -> None:
    flag = SignalFlag()
    threading.Timer(0.05, flag.set).start()
    started = time.monotonic()
    assert flag.wait(30) is True
    assert time.monotonic() - started < 5  # a poll, not the 30 s timeout
    flag.clear()
    assert flag.wait(0.01) is False
