"""SqliteSaver against real processes and a real file: kill -9, concurrency, permissions,
tampering, size on disk, indexes and retention."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgpack
import pytest
from checkpoint_helpers import SyncOps, Writer

from orchestration.checkpoint import (
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    SqliteSaver,
    serde,
)
from orchestration.checkpoint.base import new_checkpoint_id
from orchestration.checkpoint.filters import split_filter
from orchestration.checkpoint.sqlite import _list_query
from orchestration.errors import SerializationError
from orchestration.reducers import topic

ROOT = Path(__file__).resolve().parents[2]

GRAPH = textwrap.dedent(
    """
    import os, sys, time
    from dataclasses import dataclass, field
    from typing import Annotated

    from orchestration import END, StateGraph
    from orchestration.checkpoint import CheckpointConfig, SqliteSaver
    from orchestration.reducers import topic

    db, work = sys.argv[1], sys.argv[2]

    @dataclass
    class State:
        done: Annotated[list[str], topic] = field(default_factory=list)

    def make(name):
        def node(state):
            with open(os.path.join(work, "executions.log"), "a") as log:
                log.write(name + "\\n")
            if name == "c" and os.environ.get("BLOCK_IN_C"):
                open(os.path.join(work, "ready"), "w").close()
                time.sleep(120)
            return {"done": [name]}
        return node

    graph = StateGraph(State)
    for name in "abcd":
        graph.add_node(name, make(name))
    graph.set_entry_point("a").add_edge("a", "b").add_edge("b", "c").add_edge("c", "d")
    graph.add_edge("d", END)
    with SqliteSaver(db) as saver:
        app = graph.compile().with_checkpoint_saver(saver)
        print(",".join(app.invoke(None, CheckpointConfig("kill-me")).done))
    """
)


def _python(script: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def test_killed_process_resumes_from_last_committed_superstep(tmp_path: Path) -> None:
    pytest.importorskip("orchestration.graph")
    script = tmp_path / "graph.py"
    script.write_text(GRAPH)
    db = tmp_path / "cp.db"
    first = _python(script, str(db), str(tmp_path), BLOCK_IN_C="1")
    _wait_for(tmp_path / "ready", first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL

    second = _python(script, str(db), str(tmp_path))
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert out.strip() == "a,b,c,d"
    # a and b finished before the kill: never re-run. c was killed mid-node: run again.
    executions = (tmp_path / "executions.log").read_text().split()
    assert executions == ["a", "b", "c", "c", "d"]


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from orchestration.checkpoint import (
        Checkpoint, CheckpointConfig, CheckpointMetadata, SqliteSaver,
    )
    from orchestration.checkpoint.base import new_checkpoint_id

    db, thread, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    saver = SqliteSaver(db)
    parent, items = None, []
    for step in range(n):
        cid = new_checkpoint_id()
        items = [*items, f"{thread}-{step}" * 20]
        checkpoint = Checkpoint(cid, datetime.now(UTC), {"items": items}, {"items": cid})
        saver.put(CheckpointConfig(thread, parent), checkpoint, CheckpointMetadata("loop", step))
        saver.put_writes(CheckpointConfig(thread, cid), [("items", step)], "task")
        saver.list(CheckpointConfig(thread), 3)
        parent = cid
    saver.close()
    """
)


def test_three_processes_write_one_file_without_locking_errors(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    db = tmp_path / "shared.db"
    procs = [_python(script, str(db), f"thread-{i}", "150") for i in range(3)]
    results = [p.communicate(timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err
    with SqliteSaver(db) as saver:
        for i in range(3):
            history = saver.list(CheckpointConfig(f"thread-{i}"))
            assert [t.metadata.step for t in history] == list(range(150))
            assert len(history[-1].checkpoint.values["items"]) == 150


def test_database_and_wal_files_are_private_to_the_owner(tmp_path: Path) -> None:
    db = tmp_path / "private.db"
    old = os.umask(0o022)
    try:
        saver = SqliteSaver(db)
        ops = Writer(SyncOps(saver))
        ops.put("t", {"a": 1})
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert path.exists(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        saver.close()
    finally:
        os.umask(old)


def _row_counts(db: Path) -> tuple[int, ...]:
    with sqlite3.connect(db) as raw:
        return tuple(
            raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("checkpoints", "blobs", "writes")
        )


def test_unserializable_field_writes_nothing_and_thread_stays_usable(tmp_path: Path) -> None:
    with SqliteSaver(tmp_path / "cp.db") as saver:
        writer = Writer(SyncOps(saver))
        first = writer.put("t", {"ok": 1, "big": "x" * 1000})
        before = _row_counts(saver.path)
        bad = Checkpoint(
            new_checkpoint_id(), datetime.now(UTC),
            {"ok": 2, "big": "y" * 1000, "sock": {1, object()}},
        )
        with pytest.raises(SerializationError, match="state field 'sock'"):
            saver.put(first.config, bad, CheckpointMetadata("loop", 1))
        assert _row_counts(saver.path) == before
        second = writer.put("t", {"ok": 2}, first)
        assert second.parent_config == first.config


def test_small_superstep_is_one_row_and_big_values_go_to_blobs(tmp_path: Path) -> None:
    with SqliteSaver(tmp_path / "cp.db") as saver:
        writer = Writer(SyncOps(saver))
        first = writer.put("t", {"n": 0, "doc": "x" * 1000})
        assert _row_counts(saver.path) == (1, 1, 0)  # "doc" is too big for the row
        writer.put("t", {"n": 1, "doc": "x" * 1000}, first)
        assert _row_counts(saver.path) == (2, 1, 0)  # only "n" changed: inline


_EVIL = msgpack.packb(
    msgpack.ExtType(11, msgpack.packb(["subprocess:Popen", {"args": ["touch", "pwned"]}]))
)


@pytest.mark.parametrize("where", ["row", "blobs"])
def test_tampered_value_naming_another_type_raises_and_constructs_nothing(
    tmp_path: Path, where: str
) -> None:
    db = tmp_path / "cp.db"
    value = (1, 2) if where == "row" else ("x" * 1000, 2)
    with SqliteSaver(db) as saver:
        Writer(SyncOps(saver)).put("t", {"value": value})
    with sqlite3.connect(db) as raw:
        if where == "row":
            evil_row = serde.dumps([["value", 0, None, _EVIL]])
            raw.execute("UPDATE checkpoints SET vals = ?", (evil_row,))
        else:
            raw.execute("UPDATE blobs SET data = ? WHERE field = 'value'", (_EVIL,))
    with SqliteSaver(db) as fresh:
        with pytest.raises(SerializationError, match="'subprocess:Popen'.*refusing"):
            fresh.get_tuple(CheckpointConfig("t"))
    assert not (ROOT / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_malformed_inline_values_raise_serialization_error(tmp_path: Path) -> None:
    db = tmp_path / "cp.db"
    with SqliteSaver(db) as saver:
        Writer(SyncOps(saver)).put("t", {"value": 1})
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE checkpoints SET vals = ?", (serde.dumps([["value", 7]]),))
    with SqliteSaver(db) as fresh:
        with pytest.raises(SerializationError, match="malformed inline values"):
            fresh.get_tuple(CheckpointConfig("t"))


@dataclass
class Log:
    lines: Annotated[list[str], topic] = field(default_factory=list)
    count: int = 0


def _topic_workload(db: Path, steps: int = 300, item_bytes: int = 1024) -> int:
    """A graph appending `item_bytes` of text to a topic in each of `steps` supersteps."""
    from orchestration import END, StateGraph

    def append(state: Log) -> dict[str, Any]:
        line = os.urandom(item_bytes // 2).hex()  # incompressible text
        return {"lines": [line], "count": state.count + 1}

    graph = StateGraph(Log)
    graph.add_node("append", append)
    graph.set_entry_point("append")
    graph.add_conditional_edges("append", lambda s: END if s.count >= steps else "append")
    with SqliteSaver(db) as saver:
        final = graph.compile().with_checkpoint_saver(saver).invoke(Log(), CheckpointConfig("t"))
    assert len(final.lines) == steps
    return steps * item_bytes


def test_appending_to_a_topic_stores_at_most_two_bytes_per_appended_byte(tmp_path: Path) -> None:
    appended = _topic_workload(tmp_path / "topic.db")
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("topic.db*"))
    ratio = on_disk / appended
    print(f"bytes on disk per appended byte: {ratio:.2f}")
    assert ratio <= 2.0
    with SqliteSaver(tmp_path / "topic.db") as cold:
        latest = cold.get_tuple(CheckpointConfig("t"))
        assert latest is not None and len(latest.checkpoint.values["lines"]) == 300


def _bulk_history(db: Path, thread_id: str, n: int) -> None:
    with SqliteSaver(db) as saver:
        Writer(SyncOps(saver)).put(thread_id, {"a": 1})
    with sqlite3.connect(db) as raw:
        row = raw.execute("SELECT * FROM checkpoints").fetchone()
        marks = ", ".join("?" * len(row))
        raw.executemany(
            f"INSERT INTO checkpoints VALUES ({marks})",  # noqa: S608
            [(thread_id, new_checkpoint_id(), *row[2:]) for _ in range(n)],
        )


def test_list_uses_the_primary_key_index(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    _bulk_history(db, "t", 10_000)
    before = CheckpointConfig("t", new_checkpoint_id())
    sql, params = _list_query("t", before, split_filter({"source": "loop", "user": "ann"}), 10)
    with sqlite3.connect(db) as raw:
        plan = " ".join(str(r[-1]) for r in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING PRIMARY KEY (thread_id=? AND checkpoint_id<?)" in plan
    assert "SCAN" not in plan and "TEMP B-TREE" not in plan
    with SqliteSaver(db) as saver:
        assert len(saver.list(CheckpointConfig("t"), 10)) == 10


def test_filter_values_are_bound_not_spliced(tmp_path: Path) -> None:
    with SqliteSaver(tmp_path / "cp.db") as saver:
        Writer(SyncOps(saver)).put("t", {"a": 1}, extra={"user": "ann"})
        assert saver.list(CheckpointConfig("t"), filter={"user": "x' OR '1'='1"}) == []
        with pytest.raises(ValueError, match="invalid filter key"):
            saver.list(CheckpointConfig("t"), filter={"user') OR 1=1 --": 1})


def test_prune_keeps_the_newest_checkpoints_readable(tmp_path: Path) -> None:
    db = tmp_path / "cp.db"
    with SqliteSaver(db) as saver:
        writer = Writer(SyncOps(saver))
        parent, expected = None, {}
        for step in range(10):
            # "topic" grows by small appends (inline, then in blobs once it is big), "title"
            # never changes after the first checkpoint, whose row prune deletes.
            values = {"topic": [f"item {i}" * 10 for i in range(step + 1)], "n": step,
                      "title": "fixed"}
            parent = writer.put("t", values, parent, step=step)
            expected[parent.checkpoint.id] = values
        assert saver.prune("t", keep_last=3) == 7
    kept = sorted(expected)[-3:]
    with SqliteSaver(db) as cold:
        history = cold.list(CheckpointConfig("t"))
        assert [t.checkpoint.id for t in history] == kept
        assert [t.checkpoint.values for t in history] == [expected[c] for c in kept]
        needed = {pair for t in history for pair in t.checkpoint.versions.items()}
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT count(*) FROM checkpoints").fetchone() == (3,)
        stored = set(raw.execute("SELECT field, version FROM blobs").fetchall())
    assert stored <= needed


def test_cold_read_follows_append_chains_through_rows_and_blobs(tmp_path: Path) -> None:
    db = tmp_path / "cp.db"
    items: list[str] = []
    with SqliteSaver(db) as saver:
        writer = Writer(SyncOps(saver))
        parent = None
        for step in range(40):
            # small appends live in rows, every tenth (big) one in blobs
            items = [*items, ("big " * 100 if step % 10 == 5 else "") + f"item {step}"]
            parent = writer.put("t", {"items": items}, parent, step=step)
    with SqliteSaver(db) as cold:
        latest = cold.get_tuple(CheckpointConfig("t"))
        assert latest is not None and latest.checkpoint.values["items"] == items
        assert cold.list(CheckpointConfig("t"))[7].checkpoint.values["items"] == items[:8]


def test_delete_thread_gives_the_space_back(tmp_path: Path) -> None:
    db = tmp_path / "cp.db"
    with SqliteSaver(db) as saver:
        writer = Writer(SyncOps(saver))
        writer.put("small", {"a": 1})
        parent = None
        for step in range(20):
            parent = writer.put("big", {"blob": os.urandom(100_000), "n": step}, parent)

        def pages() -> int:
            with sqlite3.connect(db) as raw:
                return raw.execute("PRAGMA page_count").fetchone()[0]

        full = pages()
        saver.delete_thread("big")
        assert pages() < full / 10
        assert saver.get_tuple(CheckpointConfig("small")) is not None


def test_serializer_allow_list_is_enforced_by_the_saver(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class Later:
        x: int

    with SqliteSaver(tmp_path / "cp.db") as saver:
        with pytest.raises(SerializationError, match="not registered"):
            Writer(SyncOps(saver)).put("t", {"v": Later(1)})
        serde.register(Later)
        stored = Writer(SyncOps(saver)).put("t", {"v": Later(1)})
        assert stored.checkpoint.values == {"v": Later(1)}


def test_cold_read_of_latest_follows_a_chain_of_appends_kept_in_rows(tmp_path: Path) -> None:
    """Each small append lives in its checkpoint's row: reading the latest with nothing
    cached must fetch the older rows its chain runs through."""
    db = tmp_path / "cp.db"
    items: list[str] = []
    with SqliteSaver(db) as saver:
        writer, parent = Writer(SyncOps(saver)), None
        for step in range(5):
            items = [*items, f"item {step}"]
            parent = writer.put("t", {"items": items, "n": step}, parent, step=step)
    with SqliteSaver(db) as cold:
        latest = cold.get_tuple(CheckpointConfig("t"))
        assert latest is not None and latest.checkpoint.values == {"items": items, "n": 4}


def test_small_unencodable_string_is_named_and_writes_nothing(tmp_path: Path) -> None:
    # Small scalars are packed with the row in one call; a failure must still name the field.
    with SqliteSaver(tmp_path / "cp.db") as saver:
        first = Writer(SyncOps(saver)).put("t", {"ok": 1})
        before = _row_counts(saver.path)
        bad = Checkpoint(new_checkpoint_id(), datetime.now(UTC), {"ok": 2, "name": "a\udc80"})
        with pytest.raises(SerializationError, match="state field 'name'"):
            saver.put(first.config, bad, CheckpointMetadata("loop", 1))
        assert _row_counts(saver.path) == before


@pytest.mark.parametrize(
    "ts",
    [datetime(2026, 3, 1, 12, 0, 0, 1), datetime(1969, 7, 20, 20, 17, tzinfo=UTC),
     datetime(2026, 10, 25, 1, 30, tzinfo=ZoneInfo("Europe/Paris"), fold=1)],
    ids=["naive", "utc-before-epoch", "zoned-fold"],
)
def test_checkpoint_timestamp_reads_back_exactly(tmp_path: Path, ts: datetime) -> None:
    with SqliteSaver(tmp_path / "cp.db") as saver:
        cid = new_checkpoint_id()
        checkpoint = Checkpoint(cid, ts, {"a": 1})
        saver.put(CheckpointConfig("t"), checkpoint, CheckpointMetadata("input", 0))
    with SqliteSaver(tmp_path / "cp.db") as fresh:
        stored = fresh.get_tuple(CheckpointConfig("t"))
    assert stored is not None
    assert (stored.checkpoint.ts, stored.checkpoint.ts.tzinfo) == (ts, ts.tzinfo)
    assert stored.checkpoint.ts.fold == ts.fold


def test_row_value_that_is_not_a_scalar_raises_serialization_error(tmp_path: Path) -> None:
    db = tmp_path / "cp.db"
    with SqliteSaver(db) as saver:
        Writer(SyncOps(saver)).put("t", {"value": 1})
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE checkpoints SET vals = ?", (serde.dumps([["value", 2, None, [1]]]),))
    with SqliteSaver(db) as fresh:
        with pytest.raises(SerializationError, match="malformed inline values"):
            fresh.get_tuple(CheckpointConfig("t"))
