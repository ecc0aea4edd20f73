"""bin/demo's process supervision (bin/_common.sh keep_alive) and the serving Procfile.

The QA trial killed bin/demo's only worker and every run stayed queued: keep_alive must start a
command again when it exits, and a TERM to it must stop the command too (no orphan left).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_keep_alive_restarts_a_killed_command_and_stops_it_on_term(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # the "worker" records its pid and sleeps; killing it must bring a new one
    worker = f'echo $$ >> {pids}; exec sleep 60'
    script = (
        f"source {ROOT}/bin/_common.sh; KEEP_ALIVE_PAUSE=0.2 keep_alive worker bash -c '{worker}'"
    )
    proc = subprocess.Popen(["bash", "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        def started() -> list[int]:
            return [int(x) for x in pids.read_text().split()] if pids.exists() else []

        assert _wait_for(lambda: len(started()) == 1)
        first = started()[0]
        os.kill(first, signal.SIGKILL)
        assert _wait_for(lambda: len(started()) == 2), "the killed command was not restarted"
        second = started()[1]
        assert second != first and _alive(second)

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert _wait_for(lambda: not _alive(second)), "TERM left the command running"
        assert "worker exited" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in (started() if pids.exists() else []):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_demo_keeps_its_worker_alive_and_links_to_its_own_port() -> None:
    demo = (ROOT / "bin" / "demo").read_text()
    assert "keep_alive worker" in demo
    # e-mail links follow HOST/PORT (QA: PORT=8123 mailed links to :8000)
    out = subprocess.run(
        ["bash", "-c", 'eval "$(sed -n \'/^link_host=/,/^export STEPWISE_BASE_URL/p\' '
         f'{ROOT}/bin/demo)"; echo "$STEPWISE_BASE_URL"'],
        env={"PATH": os.environ["PATH"], "PORT": "8123", "HOST": "0.0.0.0"},  # noqa: S104  a bind address
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "http://127.0.0.1:8123"


def test_procfile_sweeper_resumes_stalled_runs_per_policy() -> None:
    sweeper = next(
        line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("sweeper:")
    )
    assert "resume_stalled --auto --watch auto" in sweeper


def test_serve_worker_started_alone_runs_on_the_projects_venv(tmp_path: Path) -> None:
    """The ops console tells an operator to start `bin/serve-worker notify` when nobody sends
    notifications; started from a shell whose PATH has no venv, its `python` was the system's
    and the worker crash-looped on `No module named 'django'` (found by hand)."""
    out, probe = tmp_path / "out", tmp_path / "probe.py"
    probe.write_text(f"import sys, django\nopen({str(out)!r}, 'w').write(sys.prefix)\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "STEPWISE_COMMAND": f"python {probe}"}
    process = subprocess.Popen([str(ROOT / "bin" / "serve-worker"), "probe"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        assert _wait_for(lambda: out.exists() and out.read_text(), timeout=30)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    assert Path(out.read_text()).resolve() == (ROOT / ".venv").resolve()
