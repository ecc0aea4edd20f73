"""A PostgreSQL crash under a run whose puts commit with synchronous_commit off (a worker's
default): a throwaway cluster (`bench.soak.cluster`) is crash-restarted by SIGKILLing the
write-behind connection's backend right after a side-effect node ran. What the crash may
cost: the supersteps whose puts were not yet flushed, re-run on resume; never the superstep
before the side-effect node, and never the thread's consistency. STEPWISE_SOAK_PG_PORT picks
the cluster's port (default: a free one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_helpers import HERE, ROOT, subprocess_env

from bench.soak.cluster import PgBinariesMissing, ThrowawayPostgres

pytestmark = [pytest.mark.soak, pytest.mark.timeout(300)]


def test_a_postgresql_crash_loses_no_superstep_a_side_effect_acted_on(tmp_path: Path) -> None:
    try:
        cluster = ThrowawayPostgres(max_connections=20)
    except PgBinariesMissing as exc:
        pytest.skip(str(exc))
    cluster.port = int(os.environ.get("STEPWISE_SOAK_PG_PORT", cluster.port))
    cluster.start()
    try:
        log = tmp_path / "ran.log"
        env = {**subprocess_env(), "DATABASE_URL": cluster.url, "STEPWISE_DB_POOL_MAX": "0"}
        child = subprocess.run(
            [sys.executable, str(HERE / "pg_crash_child.py"), str(log)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
        )
    finally:
        cluster.stop()
    assert child.returncode == 0, child.stderr[-3000:]
    found = json.loads(child.stdout.strip().splitlines()[-1])
    # The run failed on the crash: its next statement met its dead connection, or, sent on a
    # new connection after the restart, found its parent checkpoint lost and was refused.
    assert found["outcome"] in ("OperationalError", "IntegrityError")
    assert found["linked"]  # every surviving checkpoint's parent survived too
    # The checkpoint before the side-effect node n20 was flushed before n20 ran.
    assert ["n20"] in found["nexts"]
    assert found["resumed"] == list(range(40))  # each node's write applied exactly once
    ran = [int(line) for line in log.read_text().split()]
    # Re-run on resume: from the first superstep not on disk; n20 runs again only if its
    # own superstep's put was lost, like a superstep in flight when a worker dies.
    lost_from = len(found["nexts"]) - 1
    assert lost_from >= 20
    # The first run went on until the crash reached it: through n20 and n21 at least, and a
    # node more when its superstep ran while the put that failed was still on its way
    # (write-behind: a put's error surfaces at the next one).
    restart = next((i for i in range(1, len(ran)) if ran[i] != ran[i - 1] + 1), len(ran))
    first, rerun = ran[:restart], ran[restart:]
    assert first == list(range(restart)) and restart >= 22
    # The resumed run goes on from the first superstep it finds not stored: the one after the
    # last surviving checkpoint, or after a put that was sent on a new connection once the
    # server was back; never before the checkpoint that preceded n20, never with a gap.
    if rerun:
        assert rerun == list(range(rerun[0], 40))
        assert lost_from <= rerun[0] <= restart
    else:  # it went on right after the last node the first run ran: nothing ran twice
        assert first == list(range(40))
