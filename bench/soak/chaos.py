"""The chaos: SIGKILL a random task worker every few seconds and start a new one; restart the
server processes one at a time now and then; restart PostgreSQL once."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable

from bench.soak.processes import Proc


def monkey(*, workers: list[Proc], servers: list[Proc], restart_pg: Callable[[], None],
           stop: threading.Event, progress: Callable[[], float], kill_every: tuple[float, float],
           server_every: float, pg_at: float, log: Callable[[str], None],
           server_at: float = 0.25, pg_every: float | None = None,
           kill_at: tuple[float, ...] = ()) -> Counter[str]:
    """Runs until `stop`; `progress()` is the share of review cycles done (0..1): PostgreSQL
    is restarted once it passes `pg_at` (and again every `pg_every` seconds after that, if
    given: to hunt for what a database restart breaks), every server at least once (the
    first by `server_at`, the others spread over the next half of the cycles, each restart
    taking one not restarted yet: a run faster than `server_every` would otherwise restart
    one or none), and a worker killed at least once more by each mark of `kill_at` (on a
    fast machine a short soak's load ends before `kill_every` has killed more than once)."""
    done: Counter[str] = Counter()
    next_kill = time.monotonic() + random.uniform(*kill_every)
    next_server = time.monotonic() + server_every
    pg_restarted = False
    next_pg = float("inf")
    restarted: Proc | None = None  # a restarted server not serving yet
    restarted_once: set[int] = set()  # indexes in `servers` of those restarted at least once
    server_marks = [server_at + i * 0.5 / max(len(servers), 1) for i in range(len(servers))]
    next_look = 0.0
    while not stop.wait(0.1):
        now = time.monotonic()
        for proc in [*workers, *servers]:  # anything that died on its own comes back
            if not proc.alive():
                proc.start()
                done["restarted_after_exit"] += 1
        owed = sum(progress() >= mark for mark in kill_at) > done["workers_killed"]
        if now >= next_kill or owed:
            victim = random.choice(workers)
            victim.kill()
            victim.start()
            done["workers_killed"] += 1
            next_kill = now + random.uniform(*kill_every)
        if restarted is not None and now >= next_look:
            # the next server restart is `server_every` after the last restarted server
            # serves again: on a busy machine a server takes longer to start than that, and
            # restarting servers while they start keeps every one down (a restart storm)
            next_look = now + 1.0
            if restarted.serving():
                restarted, next_server = None, now + server_every
        owed_servers = sum(progress() >= mark for mark in server_marks)
        if restarted is None and now >= next_look and (
                now >= next_server or done["servers_restarted"] < owed_servers):
            next_look = now + 1.0
            serving = [i for i, server in enumerate(servers) if server.serving()]
            if serving:
                index = random.choice([i for i in serving if i not in restarted_once] or serving)
                restarted_once.add(index)
                restarted = servers[index]
                restarted.stop()
                restarted.start()
                done["servers_restarted"] += 1
        if (not pg_restarted and progress() >= pg_at) or now >= next_pg:
            log("restarting PostgreSQL (immediate stop: like a crash)")
            restart_pg()
            pg_restarted = True
            done["postgres_restarted"] += 1
            if pg_every:
                next_pg = time.monotonic() + random.uniform(0.5, 1.5) * pg_every
    return done
