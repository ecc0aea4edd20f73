"""What only the Django saver does: the write fence, audit columns and the thread's head."""

from __future__ import annotations

import dataclasses

import pytest
from checkpoint_helpers import SyncOps, Writer
from django.db import connection, transaction

from orchestration.checkpoint import CheckpointConfig
from orchestration.checkpoint.base import new_checkpoint_id
from orchestration.runtime import checkpoint_sql, models
from orchestration.savers import DjangoCheckpointSaver

pytestmark = pytest.mark.django_db(transaction=True)


class LeaseLost(Exception):
    pass


def _stored_versions() -> int:
    """Field versions stored in either shape: `FieldVersion` rows and in checkpoint rows."""
    inline = sum(
        len(checkpoint_sql.unpack_inline(cid, vals))
        for cid, vals in models.Checkpoint.objects.exclude(vals=None).values_list(
            "checkpoint_id", "vals"
        )
    )
    return models.FieldVersion.objects.count() + inline


def test_fence_that_raises_stops_put_and_put_writes_before_anything_is_written() -> None:
    allowed = True

    def fence() -> None:
        if not allowed:
            raise LeaseLost("another worker holds the lease")

    saver = DjangoCheckpointSaver(fence=fence)
    first = Writer(SyncOps(saver)).put("t", {"a": 1})
    allowed = False
    with pytest.raises(LeaseLost):
        Writer(SyncOps(saver)).put("t", {"a": 2}, first)
    with pytest.raises(LeaseLost):
        saver.put_writes(first.config, [("a", 3)], "task")
    assert models.Checkpoint.objects.count() == 1
    assert _stored_versions() == 1
    assert models.PendingWrite.objects.count() == 0


def test_put_records_who_and_why_from_metadata_extra(django_user_model: type) -> None:
    user = django_user_model.objects.create_user("ann")
    saver = DjangoCheckpointSaver()
    stored = Writer(SyncOps(saver)).put(
        "t", {"a": 1}, source="update", extra={"user_id": user.pk, "reason": "fix typo"}
    )
    row = models.Checkpoint.objects.get(checkpoint_id=stored.checkpoint.id)
    assert row.created_by == user
    assert row.reason == "fix typo"


def test_put_creates_the_thread_and_moves_its_head() -> None:
    saver = DjangoCheckpointSaver()
    writer = Writer(SyncOps(saver))
    first = writer.put("new-thread", {"a": 1})
    second = writer.put("new-thread", {"a": 2}, first)
    thread = models.Thread.objects.get(thread_id="new-thread")
    assert thread.head_checkpoint_id == second.checkpoint.id
    saver.delete_thread("new-thread")
    thread.refresh_from_db()
    assert thread.head_checkpoint_id == ""
    assert saver.get_tuple(CheckpointConfig("new-thread")) is None


def test_pending_writes_of_a_saver_that_never_saw_the_checkpoint_land_on_it() -> None:
    """The saver that wrote a checkpoint names its row by pk; another finds it by ids."""
    saver = DjangoCheckpointSaver()
    other = Writer(SyncOps(saver)).put("other", {"a": 1})
    first = Writer(SyncOps(saver)).put("t", {"a": 1})
    saver.put_writes(first.config, [("a", 2)], "known")
    DjangoCheckpointSaver().put_writes(first.config, [("a", 3)], "unknown")
    stored = DjangoCheckpointSaver().get_tuple(first.config)
    assert stored is not None
    assert [(w.task_id, w.value) for w in stored.pending_writes] == [("known", 2), ("unknown", 3)]
    untouched = DjangoCheckpointSaver().get_tuple(other.config)
    assert untouched is not None and untouched.pending_writes == ()


def test_lease_fence_folded_into_the_write_stops_it_once_the_run_is_taken_away() -> None:
    from orchestration.runtime.leases import Lease
    from orchestration.runtime.leases import LeaseLost as RunLeaseLost

    thread = models.Thread.objects.create(thread_id="leased")
    run = models.Run.objects.create(
        thread=thread, kind=models.Run.Kind.START, status=models.Run.Status.RUNNING,
        lease_token="token", attempts=1,
    )
    lease = Lease(run_id=run.pk, token="token", seconds=30.0)
    saver = DjangoCheckpointSaver(lease=lease)
    first = Writer(SyncOps(saver)).put("leased", {"a": 1})
    saver.put_writes(first.config, [("a", 2)], "task")
    assert models.PendingWrite.objects.count() == 1  # the lease held: written
    # resume_stalled moved the run on: another worker may own the thread from here.
    models.Run.objects.filter(pk=run.pk).update(status=models.Run.Status.STALLED, lease_token="")

    with pytest.raises(RunLeaseLost):
        Writer(SyncOps(saver)).put("leased", {"a": 3}, first)
    assert lease.lost.is_set()
    with pytest.raises(RunLeaseLost):
        saver.put_writes(first.config, [("a", 4)], "task")
    assert models.Checkpoint.objects.count() == 1
    assert _stored_versions() == 1
    assert list(models.PendingWrite.objects.values_list("task_id", flat=True)) == ["task"]
    thread.refresh_from_db()
    assert thread.head_checkpoint_id == first.checkpoint.id


def test_fence_failure_of_the_write_in_flight_stops_the_next_put_before_it_is_sent(
    request: pytest.FixtureRequest,
) -> None:
    from orchestration.runtime.leases import Lease
    from orchestration.runtime.leases import LeaseLost as RunLeaseLost
    from orchestration.runtime.write_behind import close_writers

    thread = models.Thread.objects.create(thread_id="fenced")
    run = models.Run.objects.create(
        thread=thread, kind=models.Run.Kind.START, status=models.Run.Status.RUNNING,
        lease_token="token", attempts=1,
    )
    lease = Lease(run_id=run.pk, token="token", seconds=30.0)
    request.addfinalizer(close_writers)
    saver = DjangoCheckpointSaver(lease=lease, durability="async")
    writer = Writer(SyncOps(saver))
    first = writer.put("fenced", {"a": 1})
    saver.flush()
    # resume_stalled takes the run away while the next write is about to be handed over
    models.Run.objects.filter(pk=run.pk).update(status=models.Run.Status.STALLED, lease_token="")
    second = dataclasses.replace(first.checkpoint, id=new_checkpoint_id())
    config = saver.put(first.config, second, first.metadata)  # handed over, not yet run
    assert config.checkpoint_id == second.id
    with pytest.raises(RunLeaseLost):  # the next call collects the refusal, sends nothing
        writer.put("fenced", {"a": 3}, first)
    assert lease.lost.is_set()
    assert list(models.Checkpoint.objects.values_list("checkpoint_id", flat=True)) == [
        first.checkpoint.id
    ]
    assert models.Thread.objects.get(thread_id="fenced").head_checkpoint_id == first.checkpoint.id
    with pytest.raises(RunLeaseLost):  # the saver stays stopped
        saver.put_writes(first.config, [("a", 4)], "task")
    assert models.PendingWrite.objects.count() == 0


def test_a_second_put_of_the_same_checkpoint_id_replaces_the_row() -> None:
    saver = DjangoCheckpointSaver()
    first = Writer(SyncOps(saver)).put("again", {"a": 1}, step=3)
    config = CheckpointConfig("again")
    checkpoint = dataclasses.replace(first.checkpoint, values={"a": 2})
    metadata = dataclasses.replace(first.metadata, step=4)
    saver.put(config, checkpoint, metadata)

    rows = models.Checkpoint.objects.filter(checkpoint_id=first.checkpoint.id)
    assert list(rows.values_list("step", flat=True)) == [4]
    found = saver.get_tuple(CheckpointConfig("again", first.checkpoint.id))
    assert found is not None
    assert found.metadata.step == 4


def test_a_thread_row_renamed_since_the_last_put_is_not_written_to() -> None:
    # The saver remembers each thread's row to move its head by primary key; a row that no
    # longer carries the thread id must not receive the next checkpoint.
    saver = DjangoCheckpointSaver()
    first = Writer(SyncOps(saver)).put("moved", {"a": 1})
    models.Thread.objects.filter(thread_id="moved").update(thread_id="renamed")
    second = Writer(SyncOps(saver)).put("moved", {"a": 2})

    renamed = models.Thread.objects.get(thread_id="renamed")
    assert renamed.head_checkpoint_id == first.checkpoint.id
    thread = models.Thread.objects.get(thread_id="moved")
    assert thread.head_checkpoint_id == second.checkpoint.id
    assert models.Checkpoint.objects.get(checkpoint_id=second.checkpoint.id).thread == thread


def test_small_field_versions_live_in_the_checkpoint_row_and_read_back_cold() -> None:
    saver = DjangoCheckpointSaver()
    writer = Writer(SyncOps(saver))
    big = "x" * 2000
    tip = writer.put("inline", {"items": ["a"], "note": "n0", "big": big})
    for step in range(1, 6):  # small appends: each version's base is the previous one
        tip = writer.put(
            "inline", {"items": [*tip.checkpoint.values["items"], f"i{step}"], "note": f"n{step}",
                       "big": big}, tip,
        )

    fields = set(models.FieldVersion.objects.values_list("field", flat=True))
    assert fields == {"big"}  # only the value too big for a row has a row of its own
    assert models.Checkpoint.objects.exclude(vals=None).count() == 6
    assert _stored_versions() == 6 + 6 + 1

    cold = DjangoCheckpointSaver()  # nothing cached: every value comes from the database
    found = cold.get_tuple(CheckpointConfig("inline"))
    assert found is not None
    assert found.checkpoint.values == {
        "items": ["a", "i1", "i2", "i3", "i4", "i5"], "note": "n5", "big": big,
    }
    history = DjangoCheckpointSaver().list(CheckpointConfig("inline"))
    last_items = [t.checkpoint.values["items"][-1] for t in history]
    assert last_items == ["a", "i1", "i2", "i3", "i4", "i5"]
    assert {t.checkpoint.values["big"] for t in history} == {big}


def test_a_cold_read_of_a_long_append_chain_kept_in_rows_takes_a_few_queries() -> None:
    from django.test.utils import CaptureQueriesContext

    writer = Writer(SyncOps(DjangoCheckpointSaver()))
    tip = writer.put("chain", {"items": ["a"]})
    for step in range(1, 40):
        tip = writer.put("chain", {"items": [*tip.checkpoint.values["items"], step]}, tip)

    cold = DjangoCheckpointSaver()
    with CaptureQueriesContext(connection) as queries:
        found = cold.get_tuple(CheckpointConfig("chain"))
    assert found is not None
    assert found.checkpoint.values["items"] == ["a", *range(1, 40)]
    assert len(queries) <= 6  # not one per link of the chain


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="on SQLite the row's kept versions are read apart (a local file: no round trip)",
)
def test_a_new_savers_read_of_a_head_whose_values_are_kept_in_its_row_is_one_query() -> None:
    """A worker's saver is new for each run: a resume's read of the paused head must not
    need a second round trip for values the head's own row holds."""
    from django.test.utils import CaptureQueriesContext

    writer = Writer(SyncOps(DjangoCheckpointSaver()))
    head = writer.put("kept", {"question": "approve?", "answer": ""})

    cold = DjangoCheckpointSaver()
    with CaptureQueriesContext(connection) as queries:
        found = cold.get_tuple(CheckpointConfig("kept"))
    assert found is not None and found.checkpoint.id == head.checkpoint.id
    assert found.checkpoint.values == {"question": "approve?", "answer": ""}
    assert len(queries) == 1


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="PostgreSQL never reuses a pk (the put there names its parent by pk, and a parent "
    "deleted meanwhile fails its foreign key)",
)
def test_a_put_never_links_to_another_threads_row_that_took_its_parents_pk() -> None:
    # Without AUTOINCREMENT (SQLite, migration 0008) the pk of the newest row is free again
    # once that row is deleted. A saver that remembered it as a parent must not link its next
    # checkpoint to whichever row has that pk now.
    saver, other = DjangoCheckpointSaver(), DjangoCheckpointSaver()
    first = Writer(SyncOps(saver)).put("gone", {"a": 1})
    old_pk = models.Checkpoint.objects.get(checkpoint_id=first.checkpoint.id).pk
    other.delete_thread("gone")
    taken = Writer(SyncOps(other)).put("taker", {"b": 1})
    taker_pk = models.Checkpoint.objects.get(checkpoint_id=taken.checkpoint.id).pk

    second = Writer(SyncOps(saver)).put("gone", {"a": 2}, first)

    row = models.Checkpoint.objects.get(checkpoint_id=second.checkpoint.id)
    assert row.thread.thread_id == "gone"
    assert row.parent_id is None  # its parent is gone: no link, not another thread's row
    assert taker_pk == old_pk  # the case this test is about did happen


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="on PostgreSQL reads are sent to libpq directly, outside psycopg's cursor",
)
def test_a_read_that_opens_a_callers_transaction_runs_inside_it() -> None:
    # psycopg begins the transaction of a connection out of autocommit when its cursor runs
    # the first statement; a statement sent past the cursor would run outside it. The saver
    # that wrote the values reads the head with one statement (its values are cached).
    from psycopg import pq

    saver = DjangoCheckpointSaver()
    written = Writer(SyncOps(saver)).put("read-in-atomic", {"a": 1})
    with transaction.atomic():
        found = saver.get_tuple(CheckpointConfig("read-in-atomic"))
        status = connection.connection.pgconn.transaction_status
    assert found is not None and found.checkpoint.id == written.checkpoint.id
    assert status == pq.TransactionStatus.INTRANS


def _forked_tree(saver: DjangoCheckpointSaver, thread_id: str) -> list[str]:
    """root -> a -> b with a pending write, and a fork root -> c: ids in put order."""
    writer = Writer(SyncOps(saver))
    root = writer.put(thread_id, {"n": 0})
    a = writer.put(thread_id, {"n": 1}, root)
    b = writer.put(thread_id, {"n": 2}, a)
    saver.put_writes(b.config, [("n", 3)], "task")
    c = writer.put(thread_id, {"n": 9}, root, source="fork")
    return [t.checkpoint.id for t in (root, a, b, c)]


def _dangling_parents() -> list[int]:
    """Rows whose `parent_id` names no row (SQLite keeps no constraint on it: migration 0012)."""
    ids = set(models.Checkpoint.objects.values_list("pk", flat=True))
    return [pk for pk, parent in models.Checkpoint.objects.values_list("pk", "parent_id")
            if parent is not None and parent not in ids]


def _parents(thread_id: str) -> dict[str, str | None]:
    return dict(models.Checkpoint.objects.filter(thread__thread_id=thread_id).values_list(
        "checkpoint_id", "parent__checkpoint_id"))


def test_delete_thread_deletes_its_whole_tree_and_leaves_other_threads_linked() -> None:
    saver = DjangoCheckpointSaver()
    _forked_tree(saver, "gone")
    kept = _forked_tree(saver, "kept")
    saver.delete_thread("gone")
    assert not models.Checkpoint.objects.filter(thread__thread_id="gone").exists()
    assert _parents("kept") == {kept[0]: None, kept[1]: kept[0], kept[2]: kept[1],
                                kept[3]: kept[0]}
    assert models.PendingWrite.objects.filter(checkpoint__thread__thread_id="kept").count() == 1
    assert _dangling_parents() == []
    assert saver.get_tuple(CheckpointConfig("kept")).checkpoint.id == kept[3]


def test_deleting_a_thread_row_deletes_its_whole_checkpoint_tree() -> None:
    # The admin's delete (a thread without audit rows): Django's collector finds the
    # checkpoints by their thread; the parent links need no walk of their own.
    saver = DjangoCheckpointSaver()
    _forked_tree(saver, "gone")
    kept = _forked_tree(saver, "kept")
    models.Thread.objects.get(thread_id="gone").delete()
    assert not models.Checkpoint.objects.filter(thread__thread_id="gone").exists()
    assert not models.PendingWrite.objects.filter(checkpoint__thread__thread_id="gone").exists()
    assert set(_parents("kept")) == set(kept)
    assert _dangling_parents() == []
