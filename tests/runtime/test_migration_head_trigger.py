"""Migration 0009 (SQLite: the thread's head moved by a trigger), forwards and back, on a
database written before it."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from orchestration.checkpoint import Checkpoint, CheckpointConfig, CheckpointMetadata
from orchestration.checkpoint.base import new_checkpoint_id
from orchestration.runtime.sqlite_backend.put import HEAD_TRIGGER

BEFORE = [("orchestration", "0008_checkpoint_rowid")]
AFTER = [("orchestration", "0009_sqlite_head_trigger")]


def _migrate(target: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor


def _put(saver: object, parent: str | None) -> str:
    """A checkpoint of thread "old" put by `saver`; its id."""
    cid = new_checkpoint_id()
    saver.put(  # type: ignore[attr-defined]
        CheckpointConfig("old", parent), Checkpoint(cid, datetime.now(UTC), {"a": 1}, {"a": cid}),
        CheckpointMetadata(source="loop", step=2),
    )
    return cid


def _head() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT head_checkpoint_id FROM orchestration_thread WHERE thread_id = 'old'"
        )
        return str(cursor.fetchone()[0])


def _has_trigger() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = %s",
            [HEAD_TRIGGER],
        )
        return bool(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_rows_and_heads_survive_the_head_trigger_migration_both_ways() -> None:
    from orchestration.savers import DjangoCheckpointSaver

    if connection.vendor != "sqlite":
        pytest.skip("a SQLite-only migration (a no-op on PostgreSQL)")
    executor = _migrate(BEFORE)
    assert not _has_trigger()
    apps = executor.loader.project_state(BEFORE).apps
    Thread = apps.get_model("orchestration", "Thread")
    Checkpoint = apps.get_model("orchestration", "Checkpoint")
    # As the code before it wrote them: the head set by the saver itself.
    thread = Thread.objects.create(thread_id="old", graph_name="expense", head_checkpoint_id="0002")
    first = Checkpoint.objects.create(
        thread=thread, checkpoint_id="0001", step=0, source="input",
        created_at="2026-01-01T00:00Z", vals=b"v",
    )
    Checkpoint.objects.create(
        thread=thread, checkpoint_id="0002", parent=first, step=1, source="loop",
        created_at="2026-01-01T00:01Z",
    )

    def rows() -> list[tuple[object, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.id, c.checkpoint_id, c.parent_id, c.vals, t.thread_id, "
                "t.head_checkpoint_id FROM orchestration_checkpoint c "
                "JOIN orchestration_thread t ON t.id = c.thread_id ORDER BY c.id"
            )
            return cursor.fetchall()

    stored = rows()
    database = connection.settings_dict["NAME"]
    for target, trigger in ((AFTER, True), (BEFORE, False), (AFTER, True)):
        _migrate(target)
        assert _has_trigger() == trigger
        assert rows() == stored  # nothing lost, no head moved by the migration itself
        assert stat.S_IMODE(os.stat(database).st_mode) == 0o600

    # Migrated: a put is the one statement and the trigger moves the head.
    saver = DjangoCheckpointSaver()
    put = _put(saver, "0002")
    assert _head() == put

    # Back before it, the saver still moves the head (without the trigger it asks again and
    # takes its general path).
    _migrate(BEFORE)
    again = _put(saver, put)
    assert _head() == again
    _migrate(executor.loader.graph.leaf_nodes())
    assert _has_trigger()
