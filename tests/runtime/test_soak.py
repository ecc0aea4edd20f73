"""The chaos soak, short version (`python -m bench.soak` is the long one, >= 300 cycles):
review cycles through the real pages while workers are SIGKILLed every few seconds, the
server restarted and PostgreSQL (a throwaway cluster it starts itself) restarted once. Every
count must come out as expected. Served as `bin/demo` serves it (runserver) and as `bin/serve`
does (uvicorn through `bin/serve-web`, DEBUG off): about a minute and a half each on a 2-core
machine."""

from __future__ import annotations

import shutil

import pytest

from bench.soak.cluster import PgBinariesMissing, find_pg_bin
from bench.soak.processes import DEFAULT_SERVER_CMD, SERVING_PROFILE_CMD
from bench.soak.run import SoakConfig, expected, judge, run_soak

pytestmark = [pytest.mark.soak, pytest.mark.timeout(420)]


@pytest.mark.parametrize("server_cmd", [DEFAULT_SERVER_CMD, SERVING_PROFILE_CMD],
                         ids=["runserver", "serving-profile"])
def test_short_chaos_soak_loses_nothing_and_does_nothing_twice(server_cmd: str) -> None:
    try:
        find_pg_bin()
    except PgBinariesMissing as exc:
        pytest.skip(str(exc))
    config = SoakConfig(cycles=16, reviewers=3, servers=1, workers=2, kill_every=(1.5, 3.0),
                        server_every=12.0, pg_at=0.4, backlog=8, settle_seconds=90,
                        server_cmd=server_cmd)
    counts = run_soak(config)
    print(counts)
    assert judge(counts, config) == [], counts
    assert counts["chaos"]["workers_killed"] >= 3
    assert counts["chaos"]["postgres_restarted"] == 1
    assert counts["chaos"].get("servers_restarted", 0) >= 1
    assert {k: counts[k] for k in expected(config)} == expected(config)
    shutil.rmtree(counts["logs"], ignore_errors=True)  # kept when the soak fails
