"""The Django saver keeps a small new field version in its checkpoint's row (`Checkpoint.vals`)
on PostgreSQL as on SQLite, and every read finds each version wherever it is stored: in that
row, in a `FieldVersion` row (a big one, or any version of a thread stored before)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from checkpoint_helpers import SyncOps, Writer
from django.db import connection

from orchestration.checkpoint import CheckpointConfig, storage
from orchestration.checkpoint.base import Checkpoint, CheckpointMetadata, new_checkpoint_id
from orchestration.checkpoint.storage.inline import unpack_inline
from orchestration.runtime import checkpoint_sql, models
from orchestration.savers import DjangoCheckpointSaver

pytestmark = pytest.mark.django_db(transaction=True)


def _room() -> int:
    return checkpoint_sql.inline_max(connection)


def _row_fields(thread_id: str) -> set[tuple[str, str]]:
    """(field, version) of the thread's `FieldVersion` rows."""
    return set(models.FieldVersion.objects.filter(thread__thread_id=thread_id).values_list(
        "field", "version"
    ))


def _kept_in_rows(thread_id: str) -> set[tuple[str, str]]:
    """(field, version) of the versions kept in the thread's checkpoint rows."""
    rows = models.Checkpoint.objects.filter(thread__thread_id=thread_id).exclude(vals=None)
    return {pair for cid, vals in rows.values_list("checkpoint_id", "vals")
            for pair in unpack_inline(cid, bytes(vals))}


def _assert_reads(thread_id: str, written: list[Any]) -> None:
    """Savers with nothing cached read back every checkpoint's values: the head, each one by
    id, the list and the history."""
    by_id = {t.checkpoint.id: t.checkpoint.values for t in written}
    head = DjangoCheckpointSaver().get_tuple(CheckpointConfig(thread_id))
    assert head is not None and head.checkpoint.values == written[-1].checkpoint.values
    for cid, values in by_id.items():
        found = DjangoCheckpointSaver().get_tuple(CheckpointConfig(thread_id, cid))
        assert found is not None and found.checkpoint.values == values
    listed = DjangoCheckpointSaver().list(CheckpointConfig(thread_id))
    assert {t.checkpoint.id: t.checkpoint.values for t in listed} == by_id
    history = DjangoCheckpointSaver().list_history(CheckpointConfig(thread_id))
    assert [entry[0] for entry in history] == [t.checkpoint.values for t in written]


def test_a_superstep_of_small_values_writes_no_field_version_row() -> None:
    writer = Writer(SyncOps(DjangoCheckpointSaver()))
    written = [writer.put("small", {"counter": 0, "note": "start"})]
    for step in range(1, 5):
        written.append(writer.put("small", {"counter": step, "note": "step"}, written[-1]))

    assert _row_fields("small") == set()
    kept = _kept_in_rows("small")
    assert ("counter", written[-1].checkpoint.id) in kept
    assert len(kept) == 5 + 2  # a counter per checkpoint; the note changed twice
    _assert_reads("small", written)


def test_a_version_too_big_for_the_row_is_still_a_field_version_row() -> None:
    big = "b" * (_room() + 1)
    writer = Writer(SyncOps(DjangoCheckpointSaver()))
    first = writer.put("big", {"big": big, "small": 1})
    second = writer.put("big", {"big": big + "!", "small": 2}, first)

    assert _row_fields("big") == {("big", first.checkpoint.id), ("big", second.checkpoint.id)}
    assert _kept_in_rows("big") == {
        ("small", first.checkpoint.id), ("small", second.checkpoint.id)
    }
    _assert_reads("big", [first, second])


def test_an_append_chain_through_row_and_kept_versions_reads_whole() -> None:
    # A topic's versions store the appended items only, each with its base: here the links
    # alternate between the checkpoint's row (a few small items) and a FieldVersion row (one
    # item too big to keep there), so every read follows a chain through both.
    writer = Writer(SyncOps(DjangoCheckpointSaver()))
    items = ["start"]
    written = [writer.put("chain", {"items": list(items)})]
    for step in range(1, 9):
        items.append("x" * (_room() + step) if step % 3 == 0 else f"i{step}")
        written.append(writer.put("chain", {"items": list(items)}, written[-1]))

    rows, kept = _row_fields("chain"), _kept_in_rows("chain")
    assert {cid for _, cid in rows} == {written[3].checkpoint.id, written[6].checkpoint.id}
    assert len(kept) == 7 and not rows & kept
    bases = models.FieldVersion.objects.filter(thread__thread_id="chain").values_list(
        "kind", flat=True
    )
    assert set(bases) == {models.FieldVersion.Kind.APPEND}  # stored as the new item only
    _assert_reads("chain", written)


def test_a_chain_read_takes_only_its_fields_versions_from_rows_that_keep_others() -> None:
    # Every row keeps a version of `items` (an append), of `counter`, and now and then of
    # `note`: a read of the head follows the `items` chain through all of them, and must
    # still read every field of every checkpoint right.
    writer = Writer(SyncOps(DjangoCheckpointSaver()))
    items: list[str] = []
    written: list[Any] = []
    for step in range(12):
        items.append(f"i{step}")
        values = {"items": list(items), "counter": step, "note": f"n{step // 4}"}
        written.append(writer.put("fields", values, written[-1] if written else None))

    ids = [t.checkpoint.id for t in written]
    only_items = checkpoint_sql.inline_versions(connection, "fields", up_to=ids[-1],
                                                fields={"items"})
    assert {b.field for b in only_items} == {"items"}
    assert {b.version for b in only_items} == set(ids)
    every_field = checkpoint_sql.inline_versions(connection, "fields", up_to=ids[-1])
    assert {b.field for b in every_field} == {"items", "counter", "note"}
    _assert_reads("fields", written)


def _put_as_before(thread_id: str, values: dict[str, Any], parent: Any, cache: Any) -> str:
    """Store a checkpoint as the saver did before it kept versions in rows: every changed
    field a `FieldVersion` row (`inline_max=0`), through the same put statement."""
    cid = new_checkpoint_id()
    old = parent.checkpoint if parent is not None else None
    versions = {
        name: old.versions[name] if old is not None and old.values.get(name) == value else cid
        for name, value in values.items()
    }
    checkpoint = Checkpoint(id=cid, ts=datetime.now(UTC), values=values, versions=versions)
    metadata = CheckpointMetadata(source="loop", step=0 if old is None else 1, writes={})
    encoded = storage.encode_checkpoint(
        thread_id, old.id if old is not None else None, checkpoint, metadata, cache,
        inline_max=0,
    )
    assert not encoded.inline
    checkpoint_sql.put_checkpoint(
        connection, encoded, written_by=[], created_at=checkpoint.ts, user_id=None, reason="",
        fence=None, parent_pk=None,
    )
    storage.remember_put(cache, encoded)
    return cid


def test_a_thread_stored_before_reads_the_same_and_grows_with_kept_versions() -> None:
    cache = storage.ValueCache()
    saver = DjangoCheckpointSaver()
    written: list[Any] = []
    items: list[str] = []
    for step in range(3):
        items.append(f"old{step}")
        parent = written[-1] if written else None
        cid = _put_as_before("before", {"items": list(items), "n": step}, parent, cache)
        written.append(saver.get_tuple(CheckpointConfig("before", cid)))
    assert len(_row_fields("before")) == 6 and _kept_in_rows("before") == set()
    _assert_reads("before", written)

    writer = Writer(SyncOps(DjangoCheckpointSaver()))
    for step in range(3, 6):  # the same thread, stored by this saver: appends to old rows
        items.append(f"new{step}")
        written.append(writer.put("before", {"items": list(items), "n": step}, written[-1]))
    assert len(_row_fields("before")) == 6 and len(_kept_in_rows("before")) == 6
    _assert_reads("before", written)


def test_a_list_reads_the_versions_kept_in_its_rows_with_them() -> None:
    from django.test.utils import CaptureQueriesContext

    writer = Writer(SyncOps(DjangoCheckpointSaver()))
    tip = writer.put("listed", {"items": ["a"], "n": 0})
    for step in range(1, 20):
        tip = writer.put("listed", {"items": [*tip.checkpoint.values["items"], step], "n": step},
                         tip)

    with CaptureQueriesContext(connection) as queries:
        listed = DjangoCheckpointSaver().list(CheckpointConfig("listed"))
    assert listed[-1].checkpoint.values == {"items": ["a", *range(1, 20)], "n": 19}
    # The rows, then their pending writes: no query for the values, all kept in the rows.
    assert len(queries) == 2, [q["sql"] for q in queries]


def test_a_short_listing_of_a_list_whose_every_version_is_kept_in_its_row_follows_its_chain():
    """Every field changes at every step, so each listed checkpoint's versions are kept in the
    listed rows themselves: nothing the listing names is missing, but the oldest listed
    row's list is an append whose base lies below the listing. It is fetched all the same
    (it was not, and reading the list failed as if the database had been pruned by hand); so
    is the chain under two checkpoints read together (`get_tuples`), far apart."""
    saver = DjangoCheckpointSaver()
    config = CheckpointConfig("chain-in-rows")
    parent: Checkpoint | None = None
    for step in range(12):
        cid = new_checkpoint_id()
        values = {"log": [f"tick {i}" for i in range(step + 1)], "n": step}
        checkpoint = Checkpoint(cid, datetime.now(UTC), values, {"log": cid, "n": cid})
        config = saver.put(config, checkpoint, CheckpointMetadata("loop", step))
        parent = checkpoint
    assert parent is not None
    reader = DjangoCheckpointSaver()  # a new process's: nothing cached
    listed = reader.list(CheckpointConfig("chain-in-rows"), limit=2)
    assert [len(t.checkpoint.values["log"]) for t in listed] == [11, 12]  # oldest first
    ids = [t.checkpoint.id for t in DjangoCheckpointSaver().list(CheckpointConfig("chain-in-rows"))]
    far = DjangoCheckpointSaver().get_tuples(CheckpointConfig("chain-in-rows"), [ids[-1], ids[5]])
    assert len(far[ids[-1]].checkpoint.values["log"]) == 12
    assert far[ids[5]].checkpoint.values["log"] == [f"tick {i}" for i in range(6)]
