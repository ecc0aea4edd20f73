"""Listing many checkpoints at once reads exactly what reading them one by one does.

Savers read a listing in one pass (SQLite: one range scan of the value table per field), so
these tests compare it with `get_tuple` on threads whose history branches, appends, replaces
values and mixes values kept in the checkpoint's row with big ones stored apart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from checkpoint_helpers import SyncOps, Writer, cold_copy

from orchestration.checkpoint import CheckpointConfig, CheckpointTuple
from orchestration.checkpoint.base import new_checkpoint_id
from orchestration.errors import CheckpointNotFound


def cfg(thread_id: str, checkpoint_id: str | None = None) -> CheckpointConfig:
    return CheckpointConfig(thread_id, checkpoint_id)


def _branched_thread(writer: Writer, ops: SyncOps) -> list[CheckpointTuple]:
    """A main line of 14 checkpoints whose `log` grows by big and small items, a fork from
    its middle that keeps appending, a replaced `log`, scalars that change every step or
    never, and pending writes on a few checkpoints."""
    big, written = "B" * 1500, []
    parent = None
    for i in range(14):
        item = f"{i}:{big}" if i % 3 == 0 else f"small {i}"
        log = [*parent.checkpoint.values["log"], item] if parent else [item]
        values = {"log": log, "n": i, "name": "fixed", "blob": big if i < 7 else "b2" * 900}
        parent = writer.put("t", values, parent, step=i, writes={"step": {"log": [item], "n": i}})
        written.append(parent)
    fork = writer.put("t", written[5].checkpoint.values, written[5], source="fork", step=5)
    written.append(fork)
    parent = fork
    for i in range(6, 12):
        values = {**parent.checkpoint.values, "log": [*parent.checkpoint.values["log"], f"f{i}"]}
        parent = writer.put("t", values, parent, step=i)
        written.append(parent)
    values = {**parent.checkpoint.values, "log": ["reset", big]}
    parent = writer.put("t", values, parent, step=12)
    written.append(parent)
    values = {**parent.checkpoint.values, "log": ["reset", big, "again"], "n": None}
    written.append(writer.put("t", values, parent, step=13))
    for tup in (written[3], written[15], written[-1]):
        ops.put_writes(tup.config, [("log", ["pending"]), ("n", 99)], "task")
    return written


def _one_by_one(reader: Any, listed: list[CheckpointTuple]) -> list[CheckpointTuple | None]:
    return [reader.get_tuple(t.config) for t in listed]


@pytest.mark.parametrize("cold", [False, True])
def test_listing_returns_what_get_tuple_returns_for_each_checkpoint(
    ops: SyncOps, writer: Writer, request: pytest.FixtureRequest, cold: bool
) -> None:
    written = _branched_thread(writer, ops)
    reader = cold_copy(ops.saver, request) if cold else ops.saver
    listed = reader.list(cfg("t"))
    assert sorted(t.checkpoint.id for t in listed) == sorted(t.checkpoint.id for t in written)
    assert listed == _one_by_one(cold_copy(ops.saver, request), listed)


@pytest.mark.parametrize("limit", [1, 5, 9, 12])
def test_part_of_a_listing_returns_what_get_tuple_returns(
    ops: SyncOps, writer: Writer, request: pytest.FixtureRequest, limit: int
) -> None:
    """The oldest listed versions append to versions that are not listed."""
    written = _branched_thread(writer, ops)
    before = written[12].config
    listed = cold_copy(ops.saver, request).list(cfg("t"), limit, before=before)
    assert len(listed) == limit
    assert listed == _one_by_one(cold_copy(ops.saver, request), listed)


def test_listed_tuples_equal_and_hash_like_constructed_ones(
    ops: SyncOps, writer: Writer
) -> None:
    first = writer.put("t", {"n": 1})
    second = writer.put("t", {"n": 2}, first)
    (_, listed) = ops.list(cfg("t"))
    assert listed.config == cfg("t", second.checkpoint.id)
    assert hash(listed.config) == hash(cfg("t", second.checkpoint.id))
    assert listed.parent_config == cfg("t", first.checkpoint.id)
    assert dataclasses.replace(listed.config, checkpoint_id=None) == cfg("t")


@pytest.mark.parametrize(
    "attribute", ["config", "checkpoint", "metadata", "checkpoint.values", "config.thread_id"]
)
def test_listed_tuples_cannot_be_reassigned(
    ops: SyncOps, writer: Writer, attribute: str
) -> None:
    writer.put("t", {"n": 1})
    (listed,) = ops.list(cfg("t"))
    *path, name = attribute.split(".")
    target: Any = listed
    for step in path:
        target = getattr(target, step)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(target, name, None)


def test_no_writes_clear_a_tasks_earlier_writes(ops: SyncOps, writer: Writer) -> None:
    first = writer.put("t", {"n": 1})
    ops.put_writes(first.config, [("a", 1), ("b", 2)], "task")
    ops.put_writes(first.config, [("c", 3)], "other")
    ops.put_writes(first.config, [], "task")
    stored = ops.get_tuple(first.config)
    assert stored is not None
    assert [(w.task_id, w.channel) for w in stored.pending_writes] == [("other", "c")]


@pytest.mark.parametrize("count", [0, 1, 3])
def test_writes_for_an_unknown_checkpoint_are_refused_and_not_stored(
    ops: SyncOps, writer: Writer, count: int
) -> None:
    first = writer.put("t", {"n": 1})
    unknown = cfg("t", new_checkpoint_id())
    with pytest.raises(CheckpointNotFound, match="to attach pending writes to"):
        ops.put_writes(unknown, [("a", i) for i in range(count)], "task")
    assert all(t.pending_writes == () for t in ops.list(cfg("t")))
    assert ops.get_tuple(first.config) == first


def test_a_filtered_listing_gives_each_checkpoint_only_its_own_pending_writes(
    ops: SyncOps, writer: Writer
) -> None:
    """The listed checkpoints (oldest first) are interleaved with unlisted ones that have
    writes too (SQLite reads a listing's writes by id range)."""
    parent = None
    for i in range(24):
        parent = writer.put("t", {"n": i}, parent, step=i, extra={"even": i % 2 == 0})
        ops.put_writes(parent.config, [("n", i)], f"task {i}")
    listed = ops.list(cfg("t"), filter={"even": True})
    assert [t.metadata.step for t in listed] == list(range(0, 24, 2))
    assert [[(w.task_id, w.value) for w in t.pending_writes] for t in listed] == [
        [(f"task {i}", i)] for i in range(0, 24, 2)
    ]


def test_a_listing_of_every_thread_filters_on_metadata(ops: SyncOps, writer: Writer) -> None:
    """`list(None, filter=...)`, LangGraph's listing across threads (admin tooling), on every
    saver; the Django saver raised NotImplementedError."""
    for thread, user in (("a", "bob"), ("b", "eve"), ("c", "bob")):
        first = writer.put(thread, {"n": 1}, extra={"user": user})
        writer.put(thread, {"n": 2}, first, extra={"user": user})
    writer.put("a", {"n": 9}, ns="child", extra={"user": "bob"})
    bobs = ops.saver.list(None, filter={"user": "bob"})
    assert sorted((t.config.thread_id, t.config.checkpoint_ns) for t in bobs) == [
        ("a", ""), ("a", ""), ("a", "child"), ("c", ""), ("c", "")]
    assert len(ops.saver.list(None, filter={"user": "eve"})) == 2
    assert len(ops.saver.list(None, limit=3)) == 3
