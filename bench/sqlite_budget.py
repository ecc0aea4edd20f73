"""Where a superstep of `django-sqlite-linear` goes, by saver, in one process:

    python -m bench.sqlite_budget [--runs 20] [--rounds 5]

Runs the workload's 50-node chain with savers that each do a little more of what the Django
saver does, and prints CPU µs per superstep (`time.process_time`, median of `--rounds`
rounds of `--runs` invokes) with its user and system parts (`getrusage`, whole run):

- `engine`: a saver whose `put` stores nothing (the engine's own work per superstep),
- `encode`: `put` encodes the checkpoint and caches it as the Django saver does, no SQL,
- `django`: the Django saver as a worker runs it on SQLite (lease-fenced, durability sync),
- `engine-sqlite`: the engine's own SQLite saver, for comparison,
- `raw`: one sqlite3 INSERT + COMMIT of a 181 B row (the floor of the <= 3x target).

WAL checkpoints are off on the Django connection (as in `bench.sqlite_put`), so no commit
copies the WAL back in the middle of a round. What the first two rows cost is already a
floor under the ratio: no change to the put's SQL or plumbing goes below them.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import nodes
from bench.db_workloads import SQLITE_ALIAS, DjangoKit
from bench.raw_sqlite import open_wal
from bench.sqlite_put import django_sqlite
from bench.workloads import STEPWISE

# The Django saver's room for small values in the row on SQLite (`checkpoint_sql.inline_max`).
INLINE_MAX = 384


def _stub_savers() -> dict[str, Any]:
    from orchestration.checkpoint import storage
    from orchestration.checkpoint.base import BaseCheckpointSaver

    class Discarding(BaseCheckpointSaver):
        """Stores nothing: what is left is the engine's superstep."""

        def get_tuple(self, config: Any) -> None:
            return None

        def list(self, config: Any, **kwargs: Any) -> Any:
            return iter(())

        def put(self, config: Any, checkpoint: Any, metadata: Any) -> Any:
            return storage.trusted_config(config.thread_id, checkpoint.id)

        def put_writes(self, config: Any, writes: Any, task_id: str) -> None:
            pass

        def delete_thread(self, thread_id: str) -> None:
            pass

    class EncodingOnly(Discarding):
        """Encodes and caches each checkpoint as the Django saver does, writes nothing."""

        def __init__(self) -> None:
            super().__init__()
            self.cache = storage.ValueCache()

        def put(self, config: Any, checkpoint: Any, metadata: Any) -> Any:
            encoded = storage.encode_checkpoint(
                config.thread_id, config.checkpoint_id, checkpoint, metadata, self.cache,
                inline_max=INLINE_MAX,
            )
            storage.remember_put(self.cache, encoded, keep_inline=True)
            return storage.trusted_config(config.thread_id, checkpoint.id)

    return {"engine": Discarding(), "encode": EncodingOnly()}


def _measure(run: Any, runs: int, rounds: int, steps_per_run: int) -> dict[str, float]:
    per_round = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for r in range(rounds):
        start = time.process_time_ns()
        for i in range(runs):
            run(r, i)
        per_round.append((time.process_time_ns() - start) / (runs * steps_per_run) / 1_000)
    after = resource.getrusage(resource.RUSAGE_SELF)
    steps = rounds * runs * steps_per_run
    return {
        "cpu": statistics.median(per_round),
        "user": (after.ru_utime - before.ru_utime) / steps * 1e6,
        "sys": (after.ru_stime - before.ru_stime) / steps * 1e6,
    }


def _raw(workdir: Path, runs: int, rounds: int) -> dict[str, float]:
    conn = open_wal(workdir / "raw.sqlite3")
    conn.execute(
        "CREATE TABLE checkpoints (thread_id TEXT, checkpoint_id TEXT, parent_id TEXT, "
        "data BLOB, PRIMARY KEY (thread_id, checkpoint_id))"
    )
    conn.commit()
    conn.execute("PRAGMA wal_autocheckpoint=0")
    data = os.urandom(181)
    last: dict[str, Any] = {"parent": None}

    def insert(r: int, i: int) -> None:
        for n in range(nodes.LINEAR_NODES):
            cid = f"{r:04d}{i:06d}{n:014d}"
            conn.execute(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?)", ("t", cid, last["parent"], data)
            )
            conn.commit()
            last["parent"] = cid

    try:
        return _measure(insert, runs, rounds, nodes.LINEAR_NODES)
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_budget")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with django_sqlite("stepwise-sqlite-budget-") as ctx:
        if ctx is None:
            return 1
        tmp = ctx.workdir
        from django.db import connections

        from orchestration.checkpoint.sqlite import SqliteSaver
        from orchestration.runtime.sqlite_backend import checkpointer

        checkpointer.WalCheckpointer.note_write = lambda self: None  # type: ignore[method-assign]
        adapter = ctx.adapters[STEPWISE]
        savers = {
            **_stub_savers(),
            "django": DjangoKit(SQLITE_ALIAS, ctx.servers).open(),  # type: ignore[attr-defined]
            "engine-sqlite": SqliteSaver(str(Path(tmp) / "engine.sqlite3")),
        }
        connection = connections[SQLITE_ALIAS]
        results: dict[str, dict[str, float]] = {}
        for name, saver in savers.items():
            graph = adapter.linear(saver)
            for i in range(2):  # imports, caches, connections
                adapter.invoke(graph, nodes.linear_input(), f"{name}-warm-{i}")
            if name == "django":
                connection.connection.execute("PRAGMA wal_autocheckpoint=0")

            def invoke(r: int, i: int, graph: Any = graph, name: str = name) -> None:
                adapter.invoke(graph, nodes.linear_input(), f"{name}-{r}-{i}")

            results[name] = _measure(invoke, args.runs, args.rounds, nodes.LINEAR_NODES)
        results["raw"] = _raw(Path(tmp), args.runs, args.rounds)
    raw = results["raw"]["cpu"]
    print(f"{'per superstep':14} {'CPU µs':>8} {'user':>7} {'sys':>7} {'/ raw':>7}")
    for name, r in results.items():
        print(f"{name:14} {r['cpu']:8.1f} {r['user']:7.1f} {r['sys']:7.1f} "
              f"{r['cpu'] / raw:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
