"""Data migrations, run forwards on rows written before them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("orchestration", "0002_audit_append_only")]
AFTER = [("orchestration", "0003_run_answered")]


@pytest.fixture
def back_to_latest() -> object:
    """Leave the test database fully migrated: later tests (and their worker processes) need
    the tables of migrations after AFTER."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_latest")
def test_paused_runs_whose_thread_moved_on_stop_saying_waiting() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Thread, Run = apps.get_model("orchestration", "Thread"), apps.get_model("orchestration", "Run")
    answered, forked, waiting = (
        Thread.objects.create(thread_id=name, graph_name="expense")
        for name in ("answered", "forked", "waiting")
    )
    paused = {
        t.thread_id: Run.objects.create(thread=t, kind="start", status="waiting")
        for t in (answered, forked, waiting)
    }
    Run.objects.create(thread=answered, kind="resume", status="succeeded")
    Run.objects.create(thread=forked, kind="fork", status="waiting")

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    Run = executor.loader.project_state(AFTER).apps.get_model("orchestration", "Run")
    statuses = {name: Run.objects.get(pk=run.pk).status for name, run in paused.items()}
    assert statuses == {"answered": "answered", "forked": "answered", "waiting": "waiting"}
    _migrate_to_latest()


def _migrate_to_latest() -> None:
    """Leave the schema as the other tests expect it (later migrations applied again)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_checkpoints_written_before_namespaces_belong_to_the_root_graph() -> None:
    before = [("orchestration", "0003_run_answered")]
    after = [("orchestration", "0004_checkpoint_ns_store")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Thread = apps.get_model("orchestration", "Thread")
    Checkpoint = apps.get_model("orchestration", "Checkpoint")
    thread = Thread.objects.create(thread_id="old", graph_name="expense")
    Checkpoint.objects.create(
        thread=thread, checkpoint_id="0001", step=0, source="input", created_at="2026-01-01T00:00Z"
    )
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    Checkpoint = executor.loader.project_state(after).apps.get_model("orchestration", "Checkpoint")
    assert list(Checkpoint.objects.values_list("checkpoint_id", "checkpoint_ns")) == [("0001", "")]
    _migrate_to_latest()


def _index_columns(table: str) -> list[tuple[str, ...]]:
    """The column tuples of `table`'s indexes and unique constraints (primary key excluded), as
    the database has them."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return sorted(
        tuple(c["columns"]) for c in found.values()
        if (c["index"] or c["unique"]) and not c["primary_key"]
    )


@pytest.mark.django_db(transaction=True)
def test_checkpoints_keep_their_rows_and_lookups_with_fewer_indexes() -> None:
    before = [("orchestration", "0005_worker_process")]
    after = [("orchestration", "0006_fewer_checkpoint_indexes")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Thread = apps.get_model("orchestration", "Thread")
    Checkpoint = apps.get_model("orchestration", "Checkpoint")
    FieldVersion = apps.get_model("orchestration", "FieldVersion")
    PendingWrite = apps.get_model("orchestration", "PendingWrite")
    thread = Thread.objects.create(thread_id="old", graph_name="expense")
    first = Checkpoint.objects.create(
        thread=thread, checkpoint_id="0001", step=0, source="input", created_at="2026-01-01T00:00Z"
    )
    Checkpoint.objects.create(
        thread=thread, checkpoint_id="0002", parent=first, step=1, source="loop",
        created_at="2026-01-01T00:01Z",
    )
    FieldVersion.objects.create(
        thread=thread, field="items", version="0001", kind="full", data=b"x"
    )
    PendingWrite.objects.create(checkpoint=first, task_id="t", idx=0, channel="c", data=b"y")
    assert ("thread_id",) in _index_columns("orchestration_checkpoint")

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    apps = executor.loader.project_state(after).apps
    Checkpoint = apps.get_model("orchestration", "Checkpoint")
    # Only the unique constraints, the parent link and the partial `created_by` index remain.
    assert _index_columns("orchestration_checkpoint") == [
        ("created_by_id",), ("parent_id",), ("thread_id", "checkpoint_id"),
    ]
    assert _index_columns("orchestration_fieldversion") == [("thread_id", "field", "version")]
    assert _index_columns("orchestration_pendingwrite") == [("checkpoint_id", "task_id", "idx")]
    latest = Checkpoint.objects.filter(thread__thread_id="old").order_by("-checkpoint_id")
    assert [c.checkpoint_id for c in latest] == ["0002", "0001"]
    assert apps.get_model("orchestration", "PendingWrite").objects.get().checkpoint_id == first.pk

    executor = MigrationExecutor(connection)
    executor.migrate(before)  # and back: the foreign-key indexes come back
    assert ("thread_id",) in _index_columns("orchestration_checkpoint")
    assert ("thread_id",) in _index_columns("orchestration_fieldversion")
    _migrate_to_latest()


def _checkpoint_table_sql() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s",
            ["orchestration_checkpoint"],
        )
        return str(cursor.fetchone()[0])


@pytest.mark.django_db
def test_checkpoint_table_has_no_autoincrement_on_sqlite() -> None:
    # AUTOINCREMENT updates sqlite_sequence on every insert: one more WAL page per superstep.
    # A later migration that rebuilds the table would bring it back.
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's table layout")
    assert "AUTOINCREMENT" not in _checkpoint_table_sql().upper()


@pytest.mark.django_db(transaction=True)
def test_checkpoint_rows_keep_their_pks_links_and_writes_across_the_rowid_migration() -> None:
    before = [("orchestration", "0007_checkpoint_vals")]
    after = [("orchestration", "0008_checkpoint_rowid")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Thread = apps.get_model("orchestration", "Thread")
    Checkpoint = apps.get_model("orchestration", "Checkpoint")
    PendingWrite = apps.get_model("orchestration", "PendingWrite")
    thread = Thread.objects.create(thread_id="old", graph_name="expense")
    first = Checkpoint.objects.create(
        thread=thread, checkpoint_id="0001", step=0, source="input",
        created_at="2026-01-01T00:00Z", vals=b"v",
    )
    second = Checkpoint.objects.create(
        thread=thread, checkpoint_id="0002", parent=first, step=1, source="loop",
        created_at="2026-01-01T00:01Z",
    )
    PendingWrite.objects.create(checkpoint=second, task_id="t", idx=0, channel="c", data=b"y")
    indexes = _index_columns("orchestration_checkpoint")

    def rows() -> list[tuple[object, ...]]:
        return list(Checkpoint.objects.order_by("pk").values_list(
            "pk", "checkpoint_id", "parent_id", "vals", "thread__thread_id"))

    stored = rows()
    for target in (after, before, after):  # forwards, back, forwards again: nothing lost
        executor = MigrationExecutor(connection)
        executor.migrate(target)
        Checkpoint = executor.loader.project_state(target).apps.get_model(
            "orchestration", "Checkpoint")
        assert [(pk, cid, parent, bytes(vals) if vals else None, t)
                for pk, cid, parent, vals, t in rows()] == [
            (pk, cid, parent, bytes(vals) if vals else None, t)
            for pk, cid, parent, vals, t in stored]
        assert _index_columns("orchestration_checkpoint") == indexes
        assert PendingWrite.objects.get().checkpoint_id == second.pk
        if connection.vendor == "sqlite":
            autoincrement = "AUTOINCREMENT" in _checkpoint_table_sql().upper()
            assert autoincrement == (target == before)
    # a new row after the migration takes the next pk, and the foreign keys still hold
    third = Checkpoint.objects.create(
        thread_id=thread.pk, checkpoint_id="0003", parent_id=second.pk, step=2, source="loop",
        created_at="2026-01-01T00:02Z",
    )
    assert third.pk == second.pk + 1
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA foreign_key_check")
            assert cursor.fetchall() == []
    _migrate_to_latest()


@pytest.mark.django_db(transaction=True)
def test_checkpoint_rows_keep_their_links_and_head_trigger_across_the_parent_index_migration(
) -> None:
    # Migration 0012 rebuilds the SQLite table without the parent's index and constraint
    # (PostgreSQL: nothing to do): rows, pks, links, the other indexes and the head trigger
    # of 0009 survive it, both ways.
    before = [("orchestration", "0011_sqlite_checkpoint_json_unchecked")]
    after = [("orchestration", "0012_sqlite_checkpoint_parent_unindexed")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Thread = apps.get_model("orchestration", "Thread")
    Checkpoint = apps.get_model("orchestration", "Checkpoint")
    PendingWrite = apps.get_model("orchestration", "PendingWrite")
    thread = Thread.objects.create(thread_id="parents", graph_name="expense")
    first = Checkpoint.objects.create(
        thread=thread, checkpoint_id="0001", step=0, source="input",
        created_at="2026-01-01T00:00Z", vals=b"v",
    )
    second = Checkpoint.objects.create(
        thread=thread, checkpoint_id="0002", parent=first, step=1, source="loop",
        created_at="2026-01-01T00:01Z",
    )
    PendingWrite.objects.create(checkpoint=second, task_id="t", idx=0, channel="c", data=b"y")
    indexes = _index_columns("orchestration_checkpoint")
    unindexed = [c for c in indexes if c != ("parent_id",)] \
        if connection.vendor == "sqlite" else indexes
    assert ("parent_id",) in indexes

    def rows() -> list[tuple[object, ...]]:
        return list(Checkpoint.objects.order_by("pk").values_list(
            "pk", "checkpoint_id", "parent_id", "thread__thread_id"))

    stored = rows()
    for target in (after, before, after):  # forwards, back, forwards again: nothing lost
        executor = MigrationExecutor(connection)
        executor.migrate(target)
        apps = executor.loader.project_state(target).apps
        Checkpoint = apps.get_model("orchestration", "Checkpoint")
        assert rows() == stored
        assert _index_columns("orchestration_checkpoint") == (
            indexes if target == before else unindexed)
        assert apps.get_model("orchestration", "PendingWrite").objects.get().checkpoint_id \
            == second.pk
        if connection.vendor == "sqlite":
            assert ("REFERENCES \"orchestration_checkpoint\"" in _checkpoint_table_sql()) \
                == (target == before)
    # the head trigger still moves the head, and the other foreign keys still hold
    Checkpoint.objects.create(
        thread_id=thread.pk, checkpoint_id="0003", parent_id=second.pk, step=2, source="loop",
        created_at="2026-01-01T00:02Z",
    )
    if connection.vendor == "sqlite":
        assert Thread.objects.get(pk=thread.pk).head_checkpoint_id == "0003"
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA foreign_key_check")
            assert cursor.fetchall() == []
    _migrate_to_latest()


@pytest.mark.django_db(transaction=True)
def test_checkpoint_rows_keep_their_links_and_head_trigger_across_the_json_check_migration(
) -> None:
    # Migration 0011 rebuilds the SQLite table without its JSON_VALID CHECKs (PostgreSQL:
    # nothing to do): rows, pks, links, indexes and the head trigger of 0009 survive it, both
    # ways, and the CHECKs are gone after it and back before it.
    before = [("orchestration", "0010_fewer_index_entries")]
    after = [("orchestration", "0011_sqlite_checkpoint_json_unchecked")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Thread = apps.get_model("orchestration", "Thread")
    Checkpoint = apps.get_model("orchestration", "Checkpoint")
    PendingWrite = apps.get_model("orchestration", "PendingWrite")
    thread = Thread.objects.create(thread_id="json", graph_name="expense")
    first = Checkpoint.objects.create(
        thread=thread, checkpoint_id="0001", step=0, source="input", next=["a"],
        versions={"x": "0001"}, extra={"k": "v"}, written_by=["a"],
        created_at="2026-01-01T00:00Z", vals=b"v",
    )
    second = Checkpoint.objects.create(
        thread=thread, checkpoint_id="0002", parent=first, step=1, source="loop",
        created_at="2026-01-01T00:01Z",
    )
    PendingWrite.objects.create(checkpoint=second, task_id="t", idx=0, channel="c", data=b"y")
    indexes = _index_columns("orchestration_checkpoint")

    def rows() -> list[tuple[object, ...]]:
        return [
            (pk, cid, parent, nxt, versions, extra, written_by, bytes(vals) if vals else None)
            for pk, cid, parent, nxt, versions, extra, written_by, vals
            in Checkpoint.objects.order_by("pk").values_list(
                "pk", "checkpoint_id", "parent_id", "next", "versions", "extra", "written_by",
                "vals")
        ]

    stored = rows()
    for target in (after, before, after):  # forwards, back, forwards again: nothing lost
        executor = MigrationExecutor(connection)
        executor.migrate(target)
        apps = executor.loader.project_state(target).apps
        Checkpoint = apps.get_model("orchestration", "Checkpoint")
        assert rows() == stored
        assert _index_columns("orchestration_checkpoint") == indexes
        assert apps.get_model("orchestration", "PendingWrite").objects.get().checkpoint_id \
            == second.pk
        if connection.vendor == "sqlite":
            assert ("JSON_VALID" in _checkpoint_table_sql().upper()) == (target == before)
    # the head trigger still moves the head, and the foreign keys still hold
    Checkpoint.objects.create(
        thread_id=thread.pk, checkpoint_id="0003", parent_id=second.pk, step=2, source="loop",
        created_at="2026-01-01T00:02Z",
    )
    if connection.vendor == "sqlite":
        assert Thread.objects.get(pk=thread.pk).head_checkpoint_id == "0003"
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA foreign_key_check")
            assert cursor.fetchall() == []
    _migrate_to_latest()
