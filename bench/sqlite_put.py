"""What a superstep costs the Django saver on SQLite, in figures a busy machine does not blur:

    python -m bench.sqlite_put [--runs 20] [--rounds 5]

Runs the `django-sqlite-linear` workload's graph (50 nodes, the saver as a worker runs it on
SQLite: durability "sync", every write fenced by a run lease) and reports per superstep:

- CPU µs (`time.process_time`: the caller is the process's only busy thread here, encoding
  and SQL included; `thread_time` costs ~8 µs a call on this VM, too much to time each put
  with), median of `--rounds` rounds of `--runs` invokes each, and of it the CPU µs inside
  `saver.put` (encoding, parameters, the SQL and its commit; mean over every put),
- SQL statements the saver's connection ran per put (sqlite3's trace callback: BEGIN and
  COMMIT count, a trigger's statements do not; reads of the run's other checkpoints too),
- WAL frames (4 KiB pages) appended per put, with the background WAL checkpointer and the
  automatic checkpoint off, so the WAL only grows,
- and the same three for one raw sqlite3 INSERT + COMMIT of the bench's 181 B row (the floor
  the ratio target is set against).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.__main__ import load_adapters, set_up_servers
from bench.db_workloads import SQLITE_ALIAS, DjangoKit
from bench.raw_sqlite import open_wal
from bench.workloads import STEPWISE, Context

WAL_HEADER, FRAME = 32, 4096 + 24


def wal_frames(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    return max(0, (size - WAL_HEADER) // FRAME)


@contextlib.contextmanager
def django_sqlite(prefix: str) -> Iterator[Context | None]:
    """The `django-sqlite-linear` workload's Django (SQLite alias migrated) in a temporary
    directory, for the benches that take its superstep apart; None (said on stderr) when it
    cannot be set up."""
    from bench.__main__ import ALL_WORKLOADS

    adapters, _ = load_adapters("async")
    workload = next(w for w in ALL_WORKLOADS if w.name == "django-sqlite-linear")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        ctx = Context(workdir=Path(tmp), quick=True, adapters=adapters)
        if not set_up_servers(ctx, [workload], []):
            print("Django on SQLite is not available", file=sys.stderr)
            yield None
        else:
            yield ctx


def measure_django(ctx: Context, runs: int, rounds: int) -> dict[str, float]:
    from django.db import connections

    from bench import nodes
    from orchestration.runtime.sqlite_backend import checkpointer

    checkpointer.WalCheckpointer.note_write = lambda self: None  # type: ignore[method-assign]
    adapter = ctx.adapters[STEPWISE]
    kit = DjangoKit(SQLITE_ALIAS, ctx.servers)  # type: ignore[attr-defined]
    saver = kit.open()
    graph = adapter.linear(saver)
    connection = connections[SQLITE_ALIAS]
    db = Path(str(connection.settings_dict["NAME"]))
    adapter.invoke(graph, nodes.linear_input(), "warm-up")  # imports, caches, connection
    raw = connection.connection
    raw.execute("PRAGMA wal_autocheckpoint=0")
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    statements = [0]
    texts: dict[str, int] = {}
    last = [""]

    def trace(sql: str) -> None:
        # A trigger's program is reported again with its statement's text: count it once.
        if sql == last[0]:
            return
        last[0] = sql
        statements[0] += 1
        texts[sql[:60]] = texts.get(sql[:60], 0) + 1

    raw.set_trace_callback(trace)
    puts = [0]
    put_cpu = [0]
    put = saver.put

    def counted_put(*args: Any, **kwargs: Any) -> Any:
        puts[0] += 1
        start = time.process_time_ns()
        try:
            return put(*args, **kwargs)
        finally:
            put_cpu[0] += time.process_time_ns() - start

    saver.put = counted_put  # type: ignore[method-assign]
    cpu: list[float] = []
    frames_before = wal_frames(db)
    steps = 0
    for r in range(rounds):
        start = time.process_time_ns()
        for i in range(runs):
            adapter.invoke(graph, nodes.linear_input(), f"t{r}-{i}")
        cpu.append((time.process_time_ns() - start) / (runs * nodes.LINEAR_NODES) / 1_000)
        steps += runs * nodes.LINEAR_NODES
    frames = wal_frames(db) - frames_before
    raw.set_trace_callback(None)
    for text, count in sorted(texts.items(), key=lambda item: -item[1])[:8]:
        print(f"{count:6}  {text}")
    return {
        "cpu_us_per_superstep": statistics.median(cpu),
        "cpu_us_in_put": put_cpu[0] / puts[0] / 1_000,
        "statements_per_put": statements[0] / puts[0],
        "wal_frames_per_put": frames / puts[0],
        "puts_per_superstep": puts[0] / steps,
    }


def measure_raw(workdir: Path, count: int, payload: int = 181) -> dict[str, float]:
    import os

    db = workdir / "raw.sqlite3"
    conn = open_wal(db)
    conn.execute(
        "CREATE TABLE checkpoints (thread_id TEXT, checkpoint_id TEXT, parent_id TEXT, "
        "data BLOB, PRIMARY KEY (thread_id, checkpoint_id))"
    )
    conn.commit()
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = os.urandom(payload)
    statements = [0]
    conn.set_trace_callback(lambda sql: statements.__setitem__(0, statements[0] + 1))
    before = wal_frames(db)
    start = time.process_time_ns()
    parent = None
    for i in range(count):
        cid = f"{i:024d}"
        conn.execute("INSERT INTO checkpoints VALUES (?, ?, ?, ?)", ("t", cid, parent, data))
        conn.commit()
        parent = cid
    cpu = (time.process_time_ns() - start) / count / 1_000
    conn.set_trace_callback(None)
    frames = wal_frames(db) - before
    conn.close()
    return {"cpu_us_per_insert": cpu, "statements_per_insert": statements[0] / count,
            "wal_frames_per_insert": frames / count}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_put")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with django_sqlite("stepwise-sqlite-put-") as ctx:
        if ctx is None:
            return 1
        django_side = measure_django(ctx, args.runs, args.rounds)
        raw_side = measure_raw(ctx.workdir, args.runs * 50)
    for name, value in {**django_side, **raw_side}.items():
        print(f"{name:24} {value:8.2f}")
    print(f"{'cpu ratio':24} "
          f"{django_side['cpu_us_per_superstep'] / raw_side['cpu_us_per_insert']:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
