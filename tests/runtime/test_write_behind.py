"""`DjangoCheckpointSaver(durability="async")`, the worker's mode: one fenced put in flight on
a private connection while the next superstep runs. What it must still guarantee: a fence
failure stops the run before any later work is written or any side effect acts, everything
is durable when a run returns, and a crash loses at most the superstep in flight, re-run on
resume like a crash during it."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest
from runtime_helpers import HERE, ROOT, leased_run, subprocess_env
from write_behind_graphs import crash_graph

from orchestration import END, StateGraph
from orchestration.checkpoint import CheckpointConfig
from orchestration.reducers import topic
from orchestration.runtime import models
from orchestration.runtime.leases import LeaseLost
from orchestration.runtime.savers import DjangoCheckpointSaver
from orchestration.runtime.write_behind import close_writers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _close_writers() -> Any:
    yield
    close_writers()  # its private connection must not outlive the test database


def _revoke(run: models.Run) -> None:
    """What resume_stalled does to a run whose worker looks dead: another may take it."""
    models.Run.objects.filter(pk=run.pk).update(status=models.Run.Status.STALLED, lease_token="")


def _stored(thread_id: str) -> list[str]:
    """The thread's checkpoints as committed, read on Django's own connection."""
    return list(
        models.Checkpoint.objects.filter(thread__thread_id=thread_id)
        .order_by("checkpoint_id").values_list("checkpoint_id", flat=True)
    )


@dataclass
class Ledger:
    paid: Annotated[list[str], topic] = field(default_factory=list)
    seen: Annotated[list[int], topic] = field(default_factory=list)


def _pay_graph(before_pay: Any, paid: list[str], on_pay: Any = None) -> Any:
    """prepare -> check (calls `before_pay`) -> pay (side effects: calls `on_pay`, appends to
    `paid`)."""

    def prepare(state: Ledger) -> dict[str, Any]:
        return {"seen": [1]}

    def check(state: Ledger) -> dict[str, Any]:
        before_pay()
        return {"seen": [2]}

    def pay(state: Ledger) -> dict[str, Any]:
        if on_pay is not None:
            on_pay()
        paid.append("paid")
        return {"paid": ["paid"]}

    builder = StateGraph(Ledger)
    builder.add_node("prepare", prepare)
    builder.add_node("check", check)
    builder.add_node("pay", pay, side_effects=True)
    builder.set_entry_point("prepare")
    builder.add_edge("prepare", "check").add_edge("check", "pay").add_edge("pay", END)
    return builder.compile()


def test_a_put_returns_with_at_most_its_own_write_in_flight() -> None:
    _, lease = leased_run("pipe")
    saver = DjangoCheckpointSaver(lease=lease, durability="async")
    steps: list[int] = []

    def counting(state: Ledger) -> dict[str, Any]:
        steps.append(len(_stored("pipe")))
        return {"seen": [len(steps)]}

    builder = StateGraph(Ledger)
    for name in ("a", "b", "c", "d"):
        builder.add_node(name, counting)
    builder.set_entry_point("a")
    builder.add_edge("a", "b").add_edge("b", "c").add_edge("c", "d").add_edge("d", END)
    graph = builder.compile().with_checkpoint_saver(saver)
    graph.invoke({}, CheckpointConfig("pipe"))
    # While node k runs, the checkpoints before the one just handed over are committed: the
    # input checkpoint and the k-1 after earlier nodes, less at most the one in flight.
    for k, committed in enumerate(steps):
        assert committed >= k, f"node {k} saw {committed} committed checkpoints"
    # invoke returned: everything is durable, no flush needed.
    assert len(_stored("pipe")) == len(steps) + 1
    assert [t.checkpoint.id for t in saver.list(CheckpointConfig("pipe"))] == _stored("pipe")


def test_a_side_effect_node_never_runs_after_its_superstep_write_was_refused() -> None:
    run, lease = leased_run("payments")
    paid: list[str] = []
    saver = DjangoCheckpointSaver(lease=lease, durability="async")
    graph = _pay_graph(lambda: _revoke(run), paid).with_checkpoint_saver(saver)
    with pytest.raises(LeaseLost):
        graph.invoke({}, CheckpointConfig("payments"))
    assert paid == []  # the flush before `pay` found the lease gone
    assert lease.lost.is_set()
    stored = DjangoCheckpointSaver().list(CheckpointConfig("payments"))
    assert all(2 not in t.checkpoint.values["seen"] for t in stored)  # nothing after `check`


def test_a_side_effect_node_runs_only_once_the_superstep_before_it_is_committed() -> None:
    _, lease = leased_run("committed")
    seen_by_pay: list[int] = []
    saver = DjangoCheckpointSaver(lease=lease, durability="async")
    paid: list[str] = []
    graph = _pay_graph(
        lambda: None, paid, on_pay=lambda: seen_by_pay.append(len(_stored("committed")))
    ).with_checkpoint_saver(saver)
    graph.invoke({}, CheckpointConfig("committed"))
    # input, after prepare, after check: all three committed before pay ran
    assert seen_by_pay == [3]
    assert paid == ["paid"]


def test_a_crash_with_a_write_in_flight_loses_at_most_that_superstep(tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    child = subprocess.run(
        [sys.executable, str(HERE / "write_behind_graphs.py"), "crashed", str(log)],
        cwd=ROOT, env=subprocess_env(), capture_output=True, timeout=120, check=False,
    )
    assert child.returncode == -9, child.stderr.decode(errors="replace")[-3000:]
    ran = Counter(log.read_text().split())
    assert ran == {"first": 1, "second": 1, "third": 1}
    survived = DjangoCheckpointSaver().get_tuple(CheckpointConfig("crashed"))
    assert survived is not None
    # The put after `second` was handed over just before `third` ran: committed or lost,
    # never half-written; the one after `first` was collected before it, so it is there.
    assert survived.checkpoint.values["done"] in (["first"], ["first", "second"])
    lost = survived.checkpoint.values["done"] == ["first"]

    graph = crash_graph().with_checkpoint_saver(DjangoCheckpointSaver(durability="async"))
    final = graph.invoke(None, CheckpointConfig("crashed"))
    assert final.done == ["first", "second", "third", "fourth"]  # each applied once
    ran = Counter(log.read_text().split())
    # Re-run on resume exactly like a crash during it: the lost superstep runs again.
    assert ran == {"first": 1, "second": 2 if lost else 1, "third": 2, "fourth": 1}
    history = DjangoCheckpointSaver().list(CheckpointConfig("crashed"))
    ids = {t.checkpoint.id for t in history}
    assert all(t.parent_config is None or t.parent_config.checkpoint_id in ids for t in history)



def test_write_behind_links_every_checkpoint_row_to_its_parents_row() -> None:
    """On PostgreSQL a put's statement is built while its parent's put is in flight, and the
    parent's row pk (known once that put is collected) is filled in just before it is sent."""
    _, lease = leased_run("linked")
    saver = DjangoCheckpointSaver(lease=lease, durability="async")
    graph = _pay_graph(lambda: None, []).with_checkpoint_saver(saver)
    graph.invoke({}, CheckpointConfig("linked"))
    rows = list(
        models.Checkpoint.objects.filter(thread__thread_id="linked")
        .order_by("checkpoint_id").values_list("pk", "parent_id")
    )
    assert len(rows) == 4  # input, prepare, check, pay
    assert [parent for _, parent in rows] == [None] + [pk for pk, _ in rows[:-1]]

@pytest.mark.parametrize("prepared", [True, False])
def test_write_behind_stores_every_superstep_with_or_without_prepared_statements(
    settings: Any, prepared: bool
) -> None:
    """On PostgreSQL the put is sent from the caller's thread (prepared, or unnamed for
    poolers that cannot carry prepared statements) and collected at the next put; a later
    writer on a new connection prepares again."""
    settings.STEPWISE_PREPARED_STATEMENTS = prepared
    run, lease = leased_run(f"sent-{prepared}")
    saver = DjangoCheckpointSaver(lease=lease, durability="async")
    paid: list[str] = []
    graph = _pay_graph(lambda: None, paid).with_checkpoint_saver(saver)
    first, second, refused = (f"sent-{prepared}-{n}" for n in range(3))
    graph.invoke({}, CheckpointConfig(first))
    saver.close()  # the writer's connection goes; the next put opens (and prepares) anew
    graph.invoke({}, CheckpointConfig(second))
    for thread_id in (first, second):
        assert len(_stored(thread_id)) == 4  # input, prepare, check, pay
        history = saver.list(CheckpointConfig(thread_id))
        assert [t.checkpoint.id for t in history] == _stored(thread_id)
        assert history[-1].checkpoint.values["paid"] == ["paid"]
    _revoke(run)
    with pytest.raises(LeaseLost):
        graph.invoke({}, CheckpointConfig(refused))
    assert _stored(refused) == []  # the refused put wrote nothing


def test_a_kept_writer_whose_connection_the_server_ended_reconnects_before_the_next_put() -> None:
    """A worker keeps its writer between runs; PostgreSQL restarting (or an admin ending the
    session) meanwhile must not fail the next run's first put on the dead connection."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the send-ahead writer is PostgreSQL's")
    import time

    from orchestration.runtime.write_behind import current_writer

    _, lease = leased_run("kept")
    saver = DjangoCheckpointSaver(lease=lease, durability="async")
    paid: list[str] = []
    graph = _pay_graph(lambda: None, paid).with_checkpoint_saver(saver)
    graph.invoke({}, CheckpointConfig("kept-1"))
    saver.flush()  # what a worker does between runs instead of closing
    writer = current_writer(connection.alias)
    assert writer is not None
    backend = writer._connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    time.sleep(0.2)  # the server's FATAL message reaches the writer's socket
    graph.invoke({}, CheckpointConfig("kept-2"))
    assert len(_stored("kept-2")) == 4
    assert writer._connection.info.backend_pid != backend


@pytest.mark.parametrize("prepared", [True, False])
def test_reads_and_pending_writes_on_djangos_connection_are_prepared_once(
    settings: Any, prepared: bool
) -> None:
    """Django opens PostgreSQL connections with psycopg's prepare_threshold=None, which made
    psycopg ignore `prepare=True`: `get_tuple`, `put_writes` and a synchronous put were parsed
    and planned on every call. Prepared unless STEPWISE_PREPARED_STATEMENTS is off (poolers)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    settings.STEPWISE_PREPARED_STATEMENTS = prepared
    _, lease = leased_run(f"prepared-reads-{prepared}")
    saver = DjangoCheckpointSaver(lease=lease)
    graph = _pay_graph(lambda: None, []).with_checkpoint_saver(saver)

    def cycle(n: int) -> int:
        config = CheckpointConfig(f"prepared-reads-{prepared}-{n}")
        graph.invoke({}, config)
        assert saver.get_tuple(config) is not None
        saver.put_writes(saver.get_tuple(config).config, [("seen", 9)], "task")  # type: ignore[union-attr]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                ["%orchestration_%"],
            )
            return int(cursor.fetchone()[0])

    warm = [cycle(n) for n in range(2)]
    # The same statements again: nothing more prepared (and nothing at all when off).
    assert cycle(2) == warm[-1]
    assert warm[-1] >= 3 if prepared else warm[-1] == 0


def test_reads_stay_right_after_psycopg_deallocates_every_prepared_statement() -> None:
    """Once psycopg itself prepared a statement on a connection (every Django query with
    STEPWISE_DB_PREPARED), a rollback makes it send DEALLOCATE ALL, which also drops the
    statements the saver prepared there: each later read failed with 'prepared statement
    "stepwise_N" does not exist' for the connection's life (500s on the review page)."""
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    import psycopg

    _, lease = leased_run("deallocated")
    saver = DjangoCheckpointSaver(lease=lease)
    graph = _pay_graph(lambda: None, []).with_checkpoint_saver(saver)
    config = CheckpointConfig("deallocated")
    graph.invoke({}, config)
    before = saver.get_tuple(config)
    assert before is not None
    raw = connection.connection
    threshold = raw.prepare_threshold
    raw.prepare_threshold = 2**31 - 1  # psycopg prepares only what asks, as with the saver
    try:
        # psycopg's own prepared statement on the connection (Django's cursors bind on the
        # client and never prepare, unless STEPWISE_DB_PREPARED)
        with psycopg.Cursor(raw) as cursor:
            cursor.execute("SELECT 1 WHERE %s::int > 0", [1], prepare=True)
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            models.Run.objects.filter(pk=lease.run_id).exists()
            raise ZeroDivisionError  # Django rolls back: psycopg sends DEALLOCATE ALL
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone()[0] == 0
        after = saver.get_tuple(config)
    finally:
        raw.prepare_threshold = threshold
    assert after is not None and after.checkpoint.id == before.checkpoint.id


def _postgresql() -> Any:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    return connection


def _show_synchronous_commit(connection: Any) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def test_a_put_skips_the_wal_flush_for_its_own_transaction_only() -> None:
    """synchronous_commit=False is set by the put's own statement, for its transaction: a
    pooler that hands the session to other clients (PgBouncer in transaction mode) carries
    nothing over to their commits."""
    from datetime import UTC, datetime

    from django.db import transaction

    from orchestration.checkpoint import Checkpoint, CheckpointMetadata, storage
    from orchestration.checkpoint.base import new_checkpoint_id
    from orchestration.runtime import checkpoint_sql

    connection = _postgresql()
    cid = new_checkpoint_id()
    checkpoint = Checkpoint(
        id=cid, ts=datetime.now(UTC), values={"x": 1}, versions={"x": cid}, next=(), internal={}
    )
    metadata = CheckpointMetadata(source="input", step=-1, writes={}, extra={})
    encoded = storage.encode_checkpoint(
        "own-tx", None, checkpoint, metadata, storage.ValueCache(), inline_max=0
    )
    seen = []
    for synchronous_commit in (True, False):
        with transaction.atomic():  # the put's transaction, left open to look inside it
            job = checkpoint_sql.put_job(
                connection, encoded, written_by=[], created_at=checkpoint.ts, user_id=None,
                reason="", fence=None, parent_pk=None, synchronous_commit=synchronous_commit,
            )
            assert job(connection.connection) is not None
            seen.append(_show_synchronous_commit(connection))
        seen.append(_show_synchronous_commit(connection))
    assert seen == ["on", "on", "off", "on"]


def test_a_worker_commits_its_puts_without_the_wal_flush_unless_configured(settings: Any) -> None:
    from orchestration.runtime.tasks import _synchronous_commit

    assert _synchronous_commit() is False  # the default (config/settings.py)
    settings.STEPWISE_CHECKPOINT_SYNCHRONOUS_COMMIT = True
    assert _synchronous_commit() is True
    with pytest.raises(TypeError, match="synchronous_commit must be a bool"):
        DjangoCheckpointSaver(durability="async", synchronous_commit="off")  # type: ignore[arg-type]


def test_the_superstep_before_a_side_effect_node_is_on_disk_when_it_runs() -> None:
    """With synchronous_commit off a put's commit returns before its WAL is flushed; the
    engine's `flush_durable` before a side-effect node must flush it: the commit record of
    the superstep before `pay` lies below the WAL flush position `pay` sees."""
    connection = _postgresql()
    with connection.cursor() as cursor:
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        except Exception:  # noqa: BLE001 - not installed, or not allowed to install it
            pytest.skip("pg_walinspect is needed to read the WAL's commit records")
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
        start = cursor.fetchone()[0]
    flushed_when_paying: list[str] = []

    def on_pay() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_flush_lsn()")
            flushed_when_paying.append(cursor.fetchone()[0])

    _, lease = leased_run("on-disk")
    saver = DjangoCheckpointSaver(lease=lease, durability="async", synchronous_commit=False)
    graph = _pay_graph(lambda: None, [], on_pay=on_pay).with_checkpoint_saver(saver)
    graph.invoke({}, CheckpointConfig("on-disk"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_logical_emit_message(true, 'test', '')")  # flushes the WAL
        cursor.execute(
            """
            SELECT w.end_lsn, w.end_lsn <= %s::pg_lsn
            FROM orchestration_checkpoint c
            JOIN orchestration_thread t ON t.id = c.thread_id
            JOIN pg_get_wal_records_info(%s::pg_lsn, pg_current_wal_flush_lsn()) w
              ON w.xid = c.xmin AND w.resource_manager = 'Transaction'
             AND w.record_type = 'COMMIT'
            WHERE t.thread_id = 'on-disk' AND c.next = '["pay"]'
            """,
            [flushed_when_paying[0], start],
        )
        rows = cursor.fetchall()
    assert len(rows) == 1, rows  # the put of the superstep before `pay`, committed once
    commit_end, on_disk = rows[0]
    assert on_disk, f"committed up to {commit_end}, flushed up to {flushed_when_paying[0]}"
