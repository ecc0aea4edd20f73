"""The Django saver's put on SQLite: one fenced statement in autocommit, the thread's head moved
by migration 0009's trigger, and the general path for everything else."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from checkpoint_helpers import SyncOps, Writer
from django.db import connection

from orchestration.checkpoint import CheckpointConfig
from orchestration.checkpoint.base import new_checkpoint_id
from orchestration.runtime import models
from orchestration.runtime.leases import Lease, LeaseLost
from orchestration.runtime.sqlite_backend.put import HEAD_TRIGGER
from orchestration.savers import DjangoCheckpointSaver

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite put"),
]


class Statements:
    """The SQL statements run on Django's sqlite3 connection meanwhile (sqlite3's trace
    callback reports a trigger's program again with its statement's text: once here)."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, sql: str) -> None:
        if not self.sql or self.sql[-1] != sql:
            self.sql.append(sql)

    def heads(self) -> list[str]:
        return [" ".join(sql.split()[:3]) for sql in self.sql]


@pytest.fixture
def statements() -> Iterator[Statements]:
    connection.ensure_connection()
    seen = Statements()
    connection.connection.set_trace_callback(seen)
    yield seen
    connection.connection.set_trace_callback(None)


def _leased(thread_id: str) -> tuple[models.Run, Lease]:
    thread = models.Thread.objects.create(thread_id=thread_id)
    run = models.Run.objects.create(
        thread=thread, kind=models.Run.Kind.START, status=models.Run.Status.RUNNING,
        lease_token="token", attempts=1,
    )
    return run, Lease(run_id=run.pk, token="token", seconds=30.0)


def _head(thread_id: str) -> str:
    return models.Thread.objects.get(thread_id=thread_id).head_checkpoint_id


def test_a_fenced_put_is_one_statement_that_stores_the_row_and_moves_the_head(
    statements: Statements,
) -> None:
    run, lease = _leased("one")
    saver = DjangoCheckpointSaver(lease=lease)
    first = Writer(SyncOps(saver)).put("one", {"a": 1})
    second = dataclasses.replace(first.checkpoint, id=new_checkpoint_id(), values={"a": 2},
                                 versions={})
    statements.sql.clear()
    saver.put(first.config, second, dataclasses.replace(first.metadata, step=1))

    assert statements.heads() == ["INSERT INTO orchestration_checkpoint"]
    assert _head("one") == second.id
    row = models.Checkpoint.objects.get(checkpoint_id=second.id)
    assert row.parent.checkpoint_id == first.checkpoint.id
    assert row.thread.thread_id == "one"


def test_a_put_by_a_user_is_one_statement_that_records_the_user(
    statements: Statements,
) -> None:
    """A run a user started or answered names the user in every checkpoint's metadata: the
    one statement records it (`created_by`), and a user who no longer exists is recorded as
    nobody, as the general path's upsert does; neither takes a transaction."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create(username="putter")
    run, lease = _leased("by-user")
    saver = DjangoCheckpointSaver(lease=lease)
    first = Writer(SyncOps(saver)).put("by-user", {"a": 1})
    ids = []
    for step, user_id in ((1, user.pk), (2, user.pk + 1000)):
        nxt = dataclasses.replace(first.checkpoint, id=new_checkpoint_id(),
                                  values={"a": step + 1}, versions={})
        meta = dataclasses.replace(first.metadata, step=step,
                                   extra={**first.metadata.extra, "user_id": user_id})
        statements.sql.clear()
        first = dataclasses.replace(
            first, config=saver.put(first.config, nxt, meta), checkpoint=nxt, metadata=meta)
        assert statements.heads() == ["INSERT INTO orchestration_checkpoint"]
        ids.append(nxt.id)
    rows = dict(models.Checkpoint.objects.filter(checkpoint_id__in=ids)
                .values_list("checkpoint_id", "created_by_id"))
    assert rows == {ids[0]: user.pk, ids[1]: None}
    assert _head("by-user") == ids[1]
    assert not models.Run.objects.get(pk=run.pk).heartbeat_at  # the fence only read the run


def test_a_stale_lease_makes_the_one_statement_write_nothing(statements: Statements) -> None:
    run, lease = _leased("stale")
    saver = DjangoCheckpointSaver(lease=lease)
    writer = Writer(SyncOps(saver))
    first = writer.put("stale", {"a": 1})
    # resume_stalled moved the run on: another worker may own the thread from here.
    models.Run.objects.filter(pk=run.pk).update(status=models.Run.Status.STALLED, lease_token="")
    statements.sql.clear()

    with pytest.raises(LeaseLost):
        writer.put("stale", {"a": 2}, first)

    # The one statement found no lease and inserted nothing; the general path's fence (an
    # UPDATE of the run) refused too, and its transaction ended with nothing in it.
    assert statements.heads()[:2] == ["INSERT INTO orchestration_checkpoint", "BEGIN IMMEDIATE"]
    assert not any(sql.startswith("INSERT INTO orchestration_thread") for sql in statements.sql)
    assert list(models.Checkpoint.objects.values_list("checkpoint_id", flat=True)) == [
        first.checkpoint.id
    ]
    assert _head("stale") == first.checkpoint.id
    assert lease.lost.is_set()


def test_a_database_error_of_the_one_statement_comes_out_as_djangos() -> None:
    # Django's error translation is entered only when the put's statement fails: the error
    # still comes out as Django's class (its sqlite3 error as the cause), nothing is written,
    # the write gate is let go and the connection writes again afterwards.
    import django.db

    run, lease = _leased("failing")
    saver = DjangoCheckpointSaver(lease=lease)
    writer = Writer(SyncOps(saver))
    first = writer.put("failing", {"a": 1})
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TRIGGER test_refuses BEFORE INSERT ON orchestration_checkpoint "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    try:
        with pytest.raises(django.db.IntegrityError, match="refused by the test") as raised:
            writer.put("failing", {"a": 2}, first)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_refuses")
    assert type(raised.value.__cause__) is sqlite3.IntegrityError
    assert connection.connection.holds_gate is False
    assert not lease.lost.is_set()
    assert list(models.Checkpoint.objects.values_list("checkpoint_id", flat=True)) == [
        first.checkpoint.id
    ]
    second = writer.put("failing", {"a": 3}, first)
    assert _head("failing") == second.checkpoint.id


def test_the_fenced_statement_alone_refuses_a_stale_lease() -> None:
    # The statement itself, without the general path behind it: zero rows, nothing written.
    from orchestration.runtime.sqlite_backend import put

    run, lease = _leased("direct")
    Writer(SyncOps(DjangoCheckpointSaver(lease=lease))).put("direct", {"a": 1})
    before = models.Checkpoint.objects.count()
    raw = connection.connection
    cid = new_checkpoint_id()
    values = (cid, "", "direct", None, 1, "loop", "[]", "{}", b"", b"", "{}", "[]",
              "2026-01-01 00:00:00", "", None)
    with pytest.raises(sqlite3.IntegrityError, match=put.REFUSED):
        raw.execute(put.INSERT_FENCED, ("direct", run.pk, "another token", *values))
    assert models.Checkpoint.objects.count() == before
    assert raw.execute(put.INSERT_FENCED, ("direct", run.pk, "token", *values)).rowcount == 1
    assert _head("direct") == cid


def test_a_threads_first_put_and_a_put_with_a_big_value_take_the_transaction(
    statements: Statements,
) -> None:
    run, lease = _leased("another")
    writer = Writer(SyncOps(DjangoCheckpointSaver(lease=lease)))
    statements.sql.clear()
    first = writer.put("new", {"a": 1})  # no thread row yet: the general path makes it
    writes = [sql for sql in statements.heads() if not sql.startswith("SELECT")]
    assert writes[:3] == [  # the one statement inserted nothing: the transaction
        "INSERT INTO orchestration_checkpoint", "BEGIN IMMEDIATE", "UPDATE orchestration_run SET",
    ]
    assert "INSERT INTO orchestration_thread" in writes
    assert _head("new") == first.checkpoint.id
    statements.sql.clear()

    second = writer.put("new", {"a": 1, "big": "x" * 5000}, first)  # a FieldVersion row

    assert statements.heads()[:4] == [  # then the Writer's read of what it stored
        "BEGIN IMMEDIATE", "INSERT INTO orchestration_checkpoint",
        "INSERT INTO orchestration_fieldversion", "COMMIT",
    ]
    assert _head("new") == second.checkpoint.id
    version = models.FieldVersion.objects.get(field="big")
    assert version.thread.thread_id == "new"
    cold = DjangoCheckpointSaver().get_tuple(CheckpointConfig("new"))
    assert cold is not None
    assert cold.checkpoint.values == {"a": 1, "big": "x" * 5000}


def test_a_subgraphs_checkpoint_leaves_the_head_and_an_id_stored_again_is_replaced() -> None:
    saver = DjangoCheckpointSaver()
    writer = Writer(SyncOps(saver))
    first = writer.put("sub", {"a": 1})
    child = dataclasses.replace(first.checkpoint, id=new_checkpoint_id())
    saver.put(CheckpointConfig("sub", checkpoint_ns="inner"), child, first.metadata)
    assert _head("sub") == first.checkpoint.id

    again = dataclasses.replace(first.checkpoint, values={"a": 5})
    saver.put(CheckpointConfig("sub"), again, dataclasses.replace(first.metadata, step=7))
    row = models.Checkpoint.objects.get(checkpoint_id=first.checkpoint.id, checkpoint_ns="")
    assert row.step == 7
    assert _head("sub") == first.checkpoint.id


def test_checkpoint_insert_moves_the_head_on_sqlite() -> None:
    # Migration 0009's trigger: a later migration that rebuilds the table would drop it.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = %s",
            [HEAD_TRIGGER],
        )
        assert cursor.fetchone()[0] == 1
    thread = models.Thread.objects.create(thread_id="orm")
    models.Checkpoint.objects.create(
        thread=thread, checkpoint_id="0001", step=0, source="input",
        created_at="2026-01-01T00:00Z",
    )
    models.Checkpoint.objects.create(
        thread=thread, checkpoint_id="0002", checkpoint_ns="inner", step=0, source="input",
        created_at="2026-01-01T00:00Z",
    )
    assert _head("orm") == "0001"


def test_the_one_statement_writes_the_row_without_a_temporary_table() -> None:
    # SQLite runs an `INSERT ... SELECT` into a table with a row trigger through a temporary
    # table (opened, filled, read back and closed at every put); one row of VALUES is
    # written straight to the table.
    from orchestration.runtime.sqlite_backend import put

    connection.ensure_connection()
    for sql in (put.INSERT, put.INSERT_FENCED, *put.user_inserts()):
        program = connection.connection.execute(f"EXPLAIN {sql}", [None] * sql.count("?"))
        opcodes = {row[1] for row in program}
        assert "Insert" in opcodes
        assert "OpenEphemeral" not in opcodes


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 4, 16, 32, 37, 701960, tzinfo=UTC),
        datetime(2026, 12, 4, 16, 32, 37, tzinfo=UTC),  # no microseconds: none written
        datetime(2026, 12, 4, 16, 32, 37, 5),
        datetime(2026, 12, 4, 17, 32, 37, 5, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 12, 4, 16, 32, 37, 5, tzinfo=ZoneInfo("America/New_York")),
    ],
)
def test_the_puts_created_at_text_is_djangos(value: datetime) -> None:
    from orchestration.runtime.checkpoint_sql import _sqlite_datetime

    connection.ensure_connection()
    expected = connection.ops.adapt_datetimefield_value(value)
    assert _sqlite_datetime(connection)(value) == expected


def test_the_json_columns_are_valid_json_without_sqlites_checks() -> None:
    # Migration 0011 drops SQLite's JSON_VALID CHECKs: the saver's encoding is what keeps the
    # four JSON columns valid, for names that need escaping too (the one-name fast path and
    # the encoder's path), and metadata.extra values that are not JSON are left out.
    odd = 'quote" back\\slash \u2028 tab\t é \U0001f600'
    saver = DjangoCheckpointSaver()
    first = Writer(SyncOps(saver)).put("json", {"a": 1})
    one = dataclasses.replace(first.checkpoint, id=new_checkpoint_id(), next=(odd,))
    saver.put(first.config, one, dataclasses.replace(
        first.metadata, step=1, writes={odd: 1},
        extra={"why": odd, "nan": float("nan"), "inf": [float("inf")], odd: {"n": 2}},
    ))
    two = dataclasses.replace(one, id=new_checkpoint_id(), next=(odd, "b"))
    saver.put(CheckpointConfig("json", checkpoint_id=one.id), two, dataclasses.replace(
        first.metadata, step=2, writes={odd: 1, "b": 2},
    ))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT checkpoint_id, json_valid(next), json_valid(versions), json_valid(extra), "
            "json_valid(written_by) FROM orchestration_checkpoint c "
            "JOIN orchestration_thread t ON t.id = c.thread_id WHERE t.thread_id = 'json'"
        )
        assert [row[1:] for row in cursor.fetchall()] == [(1, 1, 1, 1)] * 3
    rows = {c.checkpoint_id: c for c in models.Checkpoint.objects.filter(thread__thread_id="json")}
    assert rows[one.id].next == [odd]
    assert rows[one.id].written_by == [odd]
    assert rows[one.id].extra == {"why": odd, odd: {"n": 2}}
    assert rows[two.id].next == [odd, "b"]
    assert saver.get_tuple(CheckpointConfig("json", checkpoint_id=one.id)).checkpoint.next == (odd,)


def test_the_put_refuses_json_that_is_not_json_before_writing() -> None:
    # NaN and infinities are not JSON (SQLite's CHECK refused them, PostgreSQL's jsonb does):
    # the encoder raises before any statement runs.
    from orchestration.runtime.checkpoint_sql import _json

    for value in ({"x": float("nan")}, [float("inf"), 1.0], {"a": [float("-inf")]}):
        with pytest.raises(ValueError):
            _json(value)
    assert _json({"x": 1.5, "y": [None, True]}) == '{"x":1.5,"y":[null,true]}'


def test_checkpoint_table_has_no_json_checks_and_keeps_its_head_trigger() -> None:
    # Migration 0011's layout: a later migration that rebuilds the table brings the CHECKs
    # back (Django's model state still declares JSONFields) and drops the trigger.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s",
            ["orchestration_checkpoint"],
        )
        assert "JSON_VALID" not in cursor.fetchone()[0].upper()
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = %s",
            [HEAD_TRIGGER],
        )
        assert cursor.fetchone()[0] == 1


def test_checkpoint_table_has_no_parent_index_or_constraint_on_sqlite() -> None:
    # Migration 0012's layout (one B-tree page less per put): a later migration that rebuilds
    # the table from Django's model state brings both back.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s",
            ["orchestration_checkpoint"],
        )
        assert '"parent_id" bigint NULL,' in cursor.fetchone()[0]
        cursor.execute("PRAGMA index_list(orchestration_checkpoint)")
        indexed = set()
        for row in cursor.fetchall():
            cursor.execute(f'PRAGMA index_info("{row[1]}")')
            indexed |= {info[2] for info in cursor.fetchall()}
    assert "parent_id" not in indexed
    assert "thread_id" in indexed  # the unique index is still there
