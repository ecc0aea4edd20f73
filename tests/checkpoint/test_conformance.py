"""The saver contract, checked for every saver (memory, SQLite, Django) through sync and
async calls. A saver must pass all of it whatever it stores in."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pydantic
import pytest
from checkpoint_helpers import SyncOps, Writer, cold_copy

from orchestration.checkpoint import (
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    PendingWrite,
    serde,
)
from orchestration.checkpoint.base import new_checkpoint_id
from orchestration.errors import CheckpointNotFound, SerializationError


class Priority(enum.Enum):
    LOW = 1
    HIGH = 2


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str = "EUR"


@dataclass
class Expense:
    id: int
    cost: Money
    tags: set[str] = field(default_factory=set)
    priority: Priority = Priority.LOW


class Reviewer(pydantic.BaseModel):
    name: str
    seen: tuple[int, ...] = ()
    expense: Expense | None = None


serde.register(Priority, Money, Expense, Reviewer)

EVERY_TYPE: dict[str, Any] = {
    "json": {"s": "é✓", "i": -3, "big": 2**80, "f": 1.5, "b": True, "n": None, "l": [1, [2]]},
    "tuple": (1, (2, 3), [4]),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "aware": datetime(2025, 3, 30, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),
    "utc": datetime(2025, 1, 1, 12, 0, tzinfo=UTC),
    "offset": datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    "naive": datetime(2025, 1, 1, 8, 15, 59, 123456),
    "date": date(2024, 2, 29),
    "time": time(23, 59, 1, 5),
    "delta": timedelta(days=-2, seconds=5, microseconds=7),
    "decimal": Decimal("1250.00"),
    "uuid": UUID("12345678-1234-5678-1234-567812345678"),
    "bytes": b"\x00\xffbinary",
    "enum": Priority.HIGH,
    "dataclass": Expense(12, Money(Decimal("1.10")), {"travel"}, Priority.HIGH),
    "pydantic": Reviewer(name="ann", seen=(1, 2), expense=Expense(1, Money(Decimal("2")))),
    "keys": {1: "int key", (1, 2): "tuple key"},
}


def cfg(thread_id: str, checkpoint_id: str | None = None) -> CheckpointConfig:
    return CheckpointConfig(thread_id, checkpoint_id)


def chain(writer: Writer, thread_id: str, n: int, **kw: Any) -> list:
    tuples = []
    parent = None
    for i in range(n):
        parent = writer.put(thread_id, {"n": i}, parent, step=i, **kw)
        tuples.append(parent)
    return tuples


# --- put / get ----------------------------------------------------------------------------


def test_get_without_checkpoint_id_returns_latest(ops: SyncOps, writer: Writer) -> None:
    tuples = chain(writer, "t", 3)
    latest = ops.get_tuple(cfg("t"))
    assert latest is not None
    assert latest.checkpoint.id == tuples[-1].checkpoint.id
    assert latest.checkpoint.values == {"n": 2}


def test_get_by_id_returns_that_checkpoint(ops: SyncOps, writer: Writer) -> None:
    tuples = chain(writer, "t", 3)
    first = ops.get_tuple(cfg("t", tuples[0].checkpoint.id))
    assert first is not None
    assert first.checkpoint.values == {"n": 0}
    assert first.metadata.step == 0


def test_get_unknown_thread_or_id_returns_none(ops: SyncOps, writer: Writer) -> None:
    chain(writer, "t", 1)
    assert ops.get_tuple(cfg("other")) is None
    assert ops.get_tuple(cfg("t", new_checkpoint_id())) is None


def test_put_returns_config_naming_the_stored_checkpoint(ops: SyncOps) -> None:
    cid = new_checkpoint_id()
    checkpoint = Checkpoint(id=cid, ts=datetime.now(UTC), values={"a": 1}, versions={"a": cid})
    config = ops.put(cfg("t"), checkpoint, CheckpointMetadata("input", 0))
    assert config == cfg("t", cid)


def test_checkpoint_fields_round_trip(ops: SyncOps) -> None:
    cid = new_checkpoint_id()
    ts = datetime(2025, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    checkpoint = Checkpoint(
        id=cid,
        ts=ts,
        values={"a": 1, "b": "x"},
        versions={"a": cid, "b": cid},
        next=("review", "notify"),
        internal={"sends": [("node", {"arg": 1})], "barrier": {"join": {"a", "b"}}},
    )
    metadata = CheckpointMetadata(
        "update", 4, writes={"review": {"a": 1}}, extra={"user_id": 7, "reason": "typo"}
    )
    ops.put(cfg("t"), checkpoint, metadata)
    stored = ops.get_tuple(cfg("t"))
    assert stored is not None
    assert stored.checkpoint == checkpoint
    assert stored.metadata == metadata
    assert stored.parent_config is None


def test_field_without_version_is_versioned_by_its_checkpoint(ops: SyncOps) -> None:
    cid = new_checkpoint_id()
    checkpoint = Checkpoint(id=cid, ts=datetime.now(UTC), values={"a": [1]})
    ops.put(cfg("t"), checkpoint, CheckpointMetadata("input", 0))
    stored = ops.get_tuple(cfg("t"))
    assert stored is not None
    assert stored.checkpoint.values == {"a": [1]}
    assert stored.checkpoint.versions == {"a": cid}


def test_parent_config_names_the_parent(ops: SyncOps, writer: Writer) -> None:
    first, second = chain(writer, "t", 2)
    assert first.parent_config is None
    assert second.parent_config == cfg("t", first.checkpoint.id)


# --- list ---------------------------------------------------------------------------------


def ids(tuples: list) -> list[str]:
    return [t.checkpoint.id for t in tuples]


def test_list_is_oldest_first(ops: SyncOps, writer: Writer) -> None:
    tuples = chain(writer, "t", 4)
    assert ids(ops.list(cfg("t"))) == ids(tuples)


def test_list_before_keeps_older_checkpoints(ops: SyncOps, writer: Writer) -> None:
    tuples = chain(writer, "t", 4)
    listed = ops.list(cfg("t"), before=cfg("t", tuples[2].checkpoint.id))
    assert ids(listed) == ids(tuples[:2])


def test_list_limit_keeps_the_newest_oldest_first(ops: SyncOps, writer: Writer) -> None:
    tuples = chain(writer, "t", 5)
    assert ids(ops.list(cfg("t"), 2)) == ids(tuples[3:])
    assert ids(ops.list(cfg("t"), 2, before=cfg("t", tuples[3].checkpoint.id))) == ids(
        tuples[1:3]
    )
    assert ops.list(cfg("t"), 0) == []


def test_list_filters_on_source_step_and_extra(ops: SyncOps, writer: Writer) -> None:
    a = writer.put("t", {"n": 0}, source="input", step=0, extra={"user": "ann", "run_id": 1})
    b = writer.put("t", {"n": 1}, a, source="loop", step=1, extra={"user": "bob", "run_id": 1})
    c = writer.put("t", {"n": 2}, b, source="update", step=2, extra={"user": "ann", "ok": True})
    assert ids(ops.list(cfg("t"), filter={"source": "loop"})) == ids([b])
    assert ids(ops.list(cfg("t"), filter={"step": 2})) == ids([c])
    assert ids(ops.list(cfg("t"), filter={"user": "ann"})) == ids([a, c])
    assert ids(ops.list(cfg("t"), filter={"user": "ann", "run_id": 1})) == ids([a])
    assert ids(ops.list(cfg("t"), filter={"ok": True})) == ids([c])
    assert ids(ops.list(cfg("t"), filter={"missing": None})) == []
    assert ids(ops.list(cfg("t"), 1, filter={"user": "ann"})) == ids([c])


def test_list_filter_on_structured_extra_value(ops: SyncOps, writer: Writer) -> None:
    a = writer.put("t", {"n": 0}, extra={"who": {"id": 1, "roles": ["x"]}})
    writer.put("t", {"n": 1}, a, extra={"who": {"id": 2}})
    assert ids(ops.list(cfg("t"), filter={"who": {"id": 1, "roles": ["x"]}})) == ids([a])


def test_list_filters_on_a_float_extra_value(ops: SyncOps, writer: Writer) -> None:
    a = writer.put("t", {"n": 0}, extra={"score": 0.5})
    b = writer.put("t", {"n": 1}, a, extra={"score": 1.25})
    c = writer.put("t", {"n": 2}, b, extra={"score": 2})
    writer.put("t", {"n": 3}, c, extra={"score": "1.25"})
    assert ids(ops.list(cfg("t"), filter={"score": 1.25})) == ids([b])
    assert ids(ops.list(cfg("t"), filter={"score": 0.5})) == ids([a])
    # Numbers match by value, as in Python: 2.0 finds the int 2, 2 finds it too.
    assert ids(ops.list(cfg("t"), filter={"score": 2.0})) == ids([c])
    assert ids(ops.list(cfg("t"), 1, filter={"score": 1.25})) == ids([b])
    assert ids(ops.list(cfg("t"), filter={"score": 0.75})) == []


def test_list_filter_values_that_cannot_be_pushed_to_sql(ops: SyncOps, writer: Writer) -> None:
    # An infinite float has no JSON form, an int past 64 bits no SQLite one, and a list is
    # compared structurally: the savers check these in Python, with `limit` after that.
    a = writer.put("t", {"n": 0}, extra={"cap": float("inf"), "big": 2**70, "tags": ["x"]})
    b = writer.put("t", {"n": 1}, a, extra={"cap": 1.0, "big": 1, "tags": ["x", "y"]})
    c = writer.put("t", {"n": 2}, b, extra={"cap": float("inf"), "big": 2**70, "tags": ["x"]})
    assert ids(ops.list(cfg("t"), filter={"cap": float("inf")})) == ids([a, c])
    assert ids(ops.list(cfg("t"), filter={"big": 2**70})) == ids([a, c])
    assert ids(ops.list(cfg("t"), filter={"tags": ["x"]})) == ids([a, c])
    assert ids(ops.list(cfg("t"), 1, filter={"tags": ["x"], "big": 2**70})) == ids([c])
    assert ids(ops.list(cfg("t"), filter={"cap": float("nan")})) == []
    assert ids(ops.list(cfg("t"), filter={"step": "1"})) == []
    assert ids(ops.list(cfg("t"), filter={"step": 1.5})) == []
    assert ids(ops.list(cfg("t"), filter={"step": 1.0})) == ids([b])


def test_list_filter_tells_bools_strings_and_numbers_apart(ops: SyncOps, writer: Writer) -> None:
    a = writer.put("t", {"n": 0}, extra={"flag": True})
    b = writer.put("t", {"n": 1}, a, extra={"flag": "true"})
    c = writer.put("t", {"n": 2}, b, extra={"flag": 1})
    d = writer.put("t", {"n": 3}, c, extra={"flag": None})
    e = writer.put("t", {"n": 4}, d, extra={"flag": "null"})
    assert ids(ops.list(cfg("t"), filter={"flag": True})) == ids([a])
    assert ids(ops.list(cfg("t"), filter={"flag": "true"})) == ids([b])
    assert ids(ops.list(cfg("t"), filter={"flag": 1})) == ids([c])
    assert ids(ops.list(cfg("t"), filter={"flag": None})) == ids([d])
    assert ids(ops.list(cfg("t"), filter={"flag": "null"})) == ids([e])


@pytest.mark.parametrize("key", ["a') OR 1=1 --", "$.x", "a.b", "", "x y", "1abc"])
def test_list_refuses_filter_keys_that_are_not_plain_names(ops: SyncOps, key: str) -> None:
    with pytest.raises(ValueError, match="invalid filter key"):
        ops.list(cfg("t"), filter={key: 1})


def test_list_only_shows_the_threads_own_checkpoints(ops: SyncOps, writer: Writer) -> None:
    mine = chain(writer, "mine", 2)
    chain(writer, "theirs", 3)
    assert ids(ops.list(cfg("mine"))) == ids(mine)
    assert ops.list(cfg("nobody")) == []


# --- pending writes -----------------------------------------------------------------------


def test_pending_writes_come_back_in_write_order(ops: SyncOps, writer: Writer) -> None:
    (cp,) = chain(writer, "t", 1)
    ops.put_writes(cp.config, [("a", 1), ("b", [2])], "task-2")
    ops.put_writes(cp.config, [("a", (3,))], "task-1")
    stored = ops.get_tuple(cp.config)
    assert stored is not None
    assert stored.pending_writes == (
        PendingWrite("task-2", "a", 1),
        PendingWrite("task-2", "b", [2]),
        PendingWrite("task-1", "a", (3,)),
    )


def test_pending_writes_of_a_task_written_twice_are_replaced(ops: SyncOps, writer: Writer) -> None:
    (cp,) = chain(writer, "t", 1)
    ops.put_writes(cp.config, [("a", 1), ("b", 2)], "task")
    ops.put_writes(cp.config, [("a", 10)], "task")
    stored = ops.get_tuple(cp.config)
    assert stored is not None
    assert stored.pending_writes == (PendingWrite("task", "a", 10),)


def test_pending_writes_belong_to_their_checkpoint(ops: SyncOps, writer: Writer) -> None:
    first, second = chain(writer, "t", 2)
    ops.put_writes(first.config, [("a", 1)], "task")
    latest = ops.get_tuple(cfg("t"))
    assert latest is not None and latest.pending_writes == ()
    assert [t.pending_writes for t in ops.list(cfg("t"))] == [(PendingWrite("task", "a", 1),), ()]


def test_pending_writes_for_unknown_checkpoint_are_refused(ops: SyncOps, writer: Writer) -> None:
    chain(writer, "t", 1)
    with pytest.raises(CheckpointNotFound):
        ops.put_writes(cfg("t", new_checkpoint_id()), [("a", 1)], "task")


# --- delete -------------------------------------------------------------------------------


def test_delete_thread_forgets_its_checkpoints_and_writes(ops: SyncOps, writer: Writer) -> None:
    (cp,) = chain(writer, "gone", 1)
    ops.put_writes(cp.config, [("a", 1)], "task")
    kept = chain(writer, "kept", 2)
    ops.delete_thread("gone")
    assert ops.get_tuple(cfg("gone")) is None
    assert ops.list(cfg("gone")) == []
    assert ids(ops.list(cfg("kept"))) == ids(kept)
    ops.delete_thread("never-existed")


def test_thread_can_be_reused_after_delete(ops: SyncOps, writer: Writer) -> None:
    chain(writer, "t", 2)
    ops.delete_thread("t")
    (again,) = chain(writer, "t", 1)
    assert ids(ops.list(cfg("t"))) == [again.checkpoint.id]


# --- values -------------------------------------------------------------------------------


def test_every_serializable_type_round_trips_exactly(ops: SyncOps, writer: Writer) -> None:
    stored = writer.put(
        "t",
        EVERY_TYPE,
        internal={"pending_sends": EVERY_TYPE},
        writes={"node": EVERY_TYPE},
        extra={"when": EVERY_TYPE["aware"], "amount": EVERY_TYPE["decimal"]},
    )
    ops.put_writes(stored.config, [(k, v) for k, v in EVERY_TYPE.items()], "task")
    again = ops.get_tuple(stored.config)
    assert again is not None
    assert again.checkpoint.values == EVERY_TYPE
    for name, value in EVERY_TYPE.items():
        assert type(again.checkpoint.values[name]) is type(value), name
    assert again.checkpoint.values["aware"].tzinfo == ZoneInfo("Europe/Paris")
    assert again.checkpoint.internal == {"pending_sends": EVERY_TYPE}
    assert again.metadata.writes == {"node": EVERY_TYPE}
    assert again.metadata.extra == {"when": EVERY_TYPE["aware"], "amount": Decimal("1250.00")}
    assert [(w.channel, w.value) for w in again.pending_writes] == list(EVERY_TYPE.items())


def test_stored_values_do_not_change_when_the_caller_mutates(ops: SyncOps) -> None:
    items = [{"a": 1}]
    cid = new_checkpoint_id()
    checkpoint = Checkpoint(id=cid, ts=datetime.now(UTC), values={"items": items})
    ops.put(cfg("t"), checkpoint, CheckpointMetadata("input", 0))
    items[0]["a"] = 2
    items.append({"b": 3})
    got = ops.get_tuple(cfg("t"))
    assert got is not None
    assert got.checkpoint.values == {"items": [{"a": 1}]}
    got.checkpoint.values["items"].append("mutated by a reader")
    again = ops.get_tuple(cfg("t"))
    assert again is not None and again.checkpoint.values == {"items": [{"a": 1}]}


def test_unserializable_value_raises_naming_the_field_and_writes_nothing(
    ops: SyncOps, writer: Writer
) -> None:
    (first,) = chain(writer, "t", 1)
    cid = new_checkpoint_id()
    bad = Checkpoint(
        id=cid, ts=datetime.now(UTC), values={"n": 1, "conn": [object()]}, versions={}
    )
    with pytest.raises(SerializationError, match=r"'conn'.*\[0\].*builtins.object"):
        ops.put(first.config, bad, CheckpointMetadata("loop", 1))
    assert ids(ops.list(cfg("t"))) == [first.checkpoint.id]
    with pytest.raises(SerializationError, match="channel 'x'"):
        ops.put_writes(first.config, [("ok", 1), ("x", {1: object()})], "task")
    stored = ops.get_tuple(first.config)
    assert stored is not None and stored.pending_writes == ()


def test_unregistered_dataclass_is_refused_naming_the_type(ops: SyncOps) -> None:
    @dataclass
    class NotRegistered:
        x: int

    bad = Checkpoint(id=new_checkpoint_id(), ts=datetime.now(UTC), values={"v": NotRegistered(1)})
    with pytest.raises(SerializationError, match="NotRegistered.*not registered"):
        ops.put(cfg("t"), bad, CheckpointMetadata("input", 0))
    assert ops.get_tuple(cfg("t")) is None


def test_values_are_exact_on_every_branch_after_forks_and_appends(
    ops: SyncOps, writer: Writer, request: pytest.FixtureRequest
) -> None:
    """A topic grows on the main branch and on a fork from its middle; every checkpoint of
    both branches reads back its own exact values, also with nothing cached."""
    item = "x" * 200
    expected: dict[str, dict[str, Any]] = {}
    parent = None
    main = []
    for i in range(6):
        values = {"topic": [f"{j}:{item}" for j in range(i + 1)], "result": f"r{i // 2}"}
        writes = {"n": {"topic": [values["topic"][-1]]}}
        parent = writer.put("t", values, parent, step=i, writes=writes)
        expected[parent.checkpoint.id] = values
        main.append(parent)
    fork = writer.put("t", main[2].checkpoint.values, main[2], source="fork", step=2)
    expected[fork.checkpoint.id] = main[2].checkpoint.values
    parent = fork
    for i in range(3, 6):
        values = {"topic": [*parent.checkpoint.values["topic"], f"fork{i}"], "result": "f"}
        parent = writer.put("t", values, parent, step=i)
        expected[parent.checkpoint.id] = values
    replaced = writer.put("t", {"topic": ["reset"], "result": "f"}, parent, step=6)
    expected[replaced.checkpoint.id] = {"topic": ["reset"], "result": "f"}
    after = writer.put("t", {"topic": ["reset", "more"], "result": "f"}, replaced, step=7)
    expected[after.checkpoint.id] = {"topic": ["reset", "more"], "result": "f"}

    for reader in (ops.saver, cold_copy(ops.saver, request)):
        listed = reader.list(cfg("t"))
        assert {t.checkpoint.id: t.checkpoint.values for t in listed} == expected
        for cid, values in expected.items():
            got = reader.get_tuple(cfg("t", cid))
            assert got is not None and got.checkpoint.values == values
        last_main = reader.get_tuple(main[-1].config)
        assert last_main is not None
        assert last_main.metadata.writes == {"n": {"topic": [f"5:{item}"]}}


def test_unchanged_field_keeps_its_version_and_value(ops: SyncOps, writer: Writer) -> None:
    first = writer.put("t", {"big": list(range(100)), "n": 0})
    second = writer.put("t", {"big": list(range(100)), "n": 1}, first)
    assert second.checkpoint.versions["big"] == first.checkpoint.id
    assert second.checkpoint.values["big"] == list(range(100))


def test_append_chain_reads_back_when_other_fields_share_its_base_version(
    ops: SyncOps, writer: Writer, request: pytest.FixtureRequest
) -> None:
    """Fields changed by one checkpoint share a version: reading an append chain whose base is
    that version must still find the base of the appended field, with nothing cached."""
    first = writer.put("t", {"log": ["a" * 300], "name": "x", "count": 1})
    second = writer.put("t", {"log": ["a" * 300, "b" * 300], "name": "x", "count": 1}, first)
    third = writer.put(
        "t", {"log": ["a" * 300, "b" * 300, "c" * 300], "name": "x", "count": 2}, second
    )

    cold = cold_copy(ops.saver, request)
    got = cold.get_tuple(third.config)
    assert got is not None
    log = ["a" * 300, "b" * 300, "c" * 300]
    assert got.checkpoint.values == {"log": log, "name": "x", "count": 2}


# --- reading many checkpoints -------------------------------------------------------------


def _growing_topic(writer: Writer, items: list[Any], extra_field: Any = None) -> list:
    """One checkpoint per item, each appending it to `topic`; `fixed` never changes."""
    parent, out = None, []
    for i in range(len(items)):
        values = {"topic": items[: i + 1], "fixed": extra_field}
        parent = writer.put("t", values, parent, step=i)
        out.append(parent)
    return out


@pytest.mark.parametrize("cold", [False, True])
def test_history_snapshots_do_not_share_mutable_items(
    ops: SyncOps, writer: Writer, request: pytest.FixtureRequest, cold: bool
) -> None:
    _growing_topic(writer, [{"n": i, "tags": ["x" * 40]} for i in range(5)], {"k": [1]})
    reader = cold_copy(ops.saver, request) if cold else ops.saver
    listed = reader.list(cfg("t"))
    listed[1].checkpoint.values["topic"][0]["n"] = "changed"
    listed[1].checkpoint.values["topic"][1]["tags"].append("more")
    listed[1].checkpoint.values["fixed"]["k"].append(2)
    for i, tup in enumerate(listed):
        if i != 1:
            assert tup.checkpoint.values["topic"] == [
                {"n": j, "tags": ["x" * 40]} for j in range(i + 1)
            ]
            assert tup.checkpoint.values["fixed"] == {"k": [1]}


@pytest.mark.parametrize("cold", [False, True])
def test_history_snapshots_get_their_own_lists_of_immutable_items(
    ops: SyncOps, writer: Writer, request: pytest.FixtureRequest, cold: bool
) -> None:
    items = [f"{i}:" + "y" * 300 for i in range(5)]
    _growing_topic(writer, items, ("same", 1))
    reader = cold_copy(ops.saver, request) if cold else ops.saver
    listed = reader.list(cfg("t"))
    for tup in listed:
        tup.checkpoint.values["topic"].append("added by a reader")
    assert [t.checkpoint.values["topic"][:-1] for t in listed] == [
        items[: i + 1] for i in range(5)
    ]
    again = reader.list(cfg("t"))
    assert [t.checkpoint.values["topic"] for t in again] == [items[: i + 1] for i in range(5)]
    assert all(t.checkpoint.values["fixed"] == ("same", 1) for t in again)


def test_history_items_holding_lists_inside_tuples_are_not_shared(
    ops: SyncOps, writer: Writer, request: pytest.FixtureRequest
) -> None:
    _growing_topic(writer, [("label", [i]) for i in range(4)])
    listed = cold_copy(ops.saver, request).list(cfg("t"))
    listed[2].checkpoint.values["topic"][0][1].append("changed")
    assert listed[3].checkpoint.values["topic"][0] == ("label", [0])
    assert listed[1].checkpoint.values["topic"][0] == ("label", [0])


def test_listing_a_long_topic_decodes_each_stored_version_once(
    ops: SyncOps, writer: Writer, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading N checkpoints of a growing topic decodes about the stored bytes, not the
    N full lists (N^2 items)."""
    n, item = 60, "z" * 500
    _growing_topic(writer, [f"{i}{item}" for i in range(n)])
    cold = cold_copy(ops.saver, request)
    decoded = 0
    real_loads = serde.loads

    def counting_loads(data: Any) -> Any:
        nonlocal decoded
        decoded += len(data)
        return real_loads(data)

    monkeypatch.setattr(serde, "loads", counting_loads)
    listed = cold.list(cfg("t"))
    assert [len(t.checkpoint.values["topic"]) for t in listed] == list(range(1, n + 1))
    full_lists = sum(i * len(item) for i in range(1, n + 1))
    assert decoded < 3 * n * len(item) < full_lists / 10


# --- checkpoint namespaces (subgraphs) ----------------------------------------------------


def ns_cfg(thread_id: str, ns: str, checkpoint_id: str | None = None) -> CheckpointConfig:
    return CheckpointConfig(thread_id, checkpoint_id, checkpoint_ns=ns)


def test_namespaces_of_a_thread_are_kept_apart(ops: SyncOps, writer: Writer) -> None:
    root = chain(writer, "t", 2)
    child, parent = None, None
    children = []
    for i in range(3):  # written after the root's: the root's latest must not move
        parent = writer.put("t", {"c": i}, parent, step=i, ns="outer")
        children.append(parent)
    nested = writer.put("t", {"d": 1}, None, step=0, ns="outer|inner")
    latest_root = ops.get_tuple(cfg("t"))
    assert latest_root is not None and latest_root.checkpoint.id == root[-1].checkpoint.id
    assert latest_root.config.checkpoint_ns == ""
    child = ops.get_tuple(ns_cfg("t", "outer"))
    assert child is not None and child.checkpoint.id == children[-1].checkpoint.id
    assert child.checkpoint.values == {"c": 2}
    assert child.config == ns_cfg("t", "outer", children[-1].checkpoint.id)
    assert child.parent_config == ns_cfg("t", "outer", children[-2].checkpoint.id)
    assert ids(ops.list(cfg("t"))) == ids(root)
    listed = ops.list(ns_cfg("t", "outer"))
    assert ids(listed) == ids(children)
    assert {t.config.checkpoint_ns for t in listed} == {"outer"}
    assert ids(ops.list(ns_cfg("t", "outer|inner"))) == [nested.checkpoint.id]
    assert ops.list(ns_cfg("t", "other")) == []
    assert ops.list(ns_cfg("t", "outer"), 1, filter={"step": 1}) == [listed[1]]


def test_a_checkpoint_is_found_only_in_its_own_namespace(ops: SyncOps, writer: Writer) -> None:
    (root,) = chain(writer, "t", 1)
    child = writer.put("t", {"c": 1}, None, step=0, ns="outer")
    assert ops.get_tuple(ns_cfg("t", "outer", root.checkpoint.id)) is None
    assert ops.get_tuple(cfg("t", child.checkpoint.id)) is None
    assert ops.get_tuple(ns_cfg("t", "outer", child.checkpoint.id)) == child


def test_pending_writes_in_a_namespace(ops: SyncOps, writer: Writer) -> None:
    chain(writer, "t", 1)
    child = writer.put("t", {"c": 1}, None, step=0, ns="outer")
    ops.put_writes(child.config, [("__interrupt__", {"id": "x"}), ("c", 2)], "task")
    stored = ops.get_tuple(ns_cfg("t", "outer"))
    assert stored is not None
    assert stored.pending_writes == (
        PendingWrite("task", "__interrupt__", {"id": "x"}),
        PendingWrite("task", "c", 2),
    )
    root = ops.get_tuple(cfg("t"))
    assert root is not None and root.pending_writes == ()


def test_delete_thread_forgets_its_namespaces(ops: SyncOps, writer: Writer) -> None:
    chain(writer, "gone", 1)
    child = writer.put("gone", {"c": 1}, None, step=0, ns="outer")
    ops.put_writes(child.config, [("c", 2)], "task")
    writer.put("gone", {"d": 1}, None, step=0, ns="outer|inner")
    kept = writer.put("gone-too-not", {"c": 1}, None, step=0, ns="outer")  # a longer thread id
    ops.delete_thread("gone")
    for ns in ("", "outer", "outer|inner"):
        assert ops.get_tuple(ns_cfg("gone", ns)) is None
        assert ops.list(ns_cfg("gone", ns)) == []
    assert ids(ops.list(ns_cfg("gone-too-not", "outer"))) == [kept.checkpoint.id]


def test_thread_ids_with_the_namespace_separator_are_refused() -> None:
    with pytest.raises(ValueError, match="x1f"):
        CheckpointConfig("a\x1fb")


# --- the store (orchestration.store), on memory, SQLite and Django, sync and async ---------


def test_store_put_get_replace_delete(store_ops: Any) -> None:
    ns = ("customers", "c-1")
    assert store_ops.get(ns, "prefs") is None
    store_ops.put(ns, "prefs", {"tone": "formal", "since": date(2024, 1, 2)})
    item = store_ops.get(ns, "prefs")
    assert item.namespace == ns and item.key == "prefs"
    assert item.value == {"tone": "formal", "since": date(2024, 1, 2)}
    assert item.created_at == item.updated_at
    store_ops.put(ns, "prefs", {"tone": "casual"})
    again = store_ops.get(ns, "prefs")
    assert again.value == {"tone": "casual"}
    assert again.created_at == item.created_at and again.updated_at >= item.updated_at
    assert store_ops.get(("customers", "c-2"), "prefs") is None
    store_ops.delete(ns, "prefs")
    assert store_ops.get(ns, "prefs") is None
    store_ops.delete(ns, "never-there")


def test_store_search_by_prefix_filter_and_pages(store_ops: Any) -> None:
    store_ops.put(("c", "1"), "a", {"kind": "fact", "n": 1})
    store_ops.put(("c", "1"), "b", {"kind": "pref", "n": 2})
    store_ops.put(("c", "1", "deep"), "c", {"kind": "fact", "n": 3})
    store_ops.put(("c", "10"), "d", {"kind": "fact", "n": 4})  # not under ("c", "1")
    store_ops.put(("other",), "e", {"kind": "fact", "n": 5})
    keys = [i.key for i in store_ops.search(("c", "1"))]
    assert keys == ["a", "b", "c"]
    assert [i.key for i in store_ops.search(("c",), filter={"kind": "fact"})] == ["a", "c", "d"]
    assert [i.key for i in store_ops.search(("c",), limit=2, offset=1)] == ["b", "c"]
    assert [i.key for i in store_ops.search((), filter={"n": 5})] == ["e"]
    assert store_ops.search(("c",), filter={"n": True}) == []  # a bool is not the number 1
    # a missing key reads as None, as LangGraph's store reads it
    assert [i.key for i in store_ops.search(("c",), filter={"missing": None})] == [
        "a", "b", "c", "d"]


def test_store_search_filter_operators_and_nested_values(store_ops: Any) -> None:
    """LangGraph's filter language: $eq/$ne/$gt/$gte/$lt/$lte, a nested dict compared on the
    keys it names, a list item by item. Where LangGraph's raises (an order asked of a value
    that is missing or not a number), nothing matches instead."""
    store_ops.put(("m",), "a", {"score": 3, "meta": {"lang": "en", "tags": ["x", "y"]}})
    store_ops.put(("m",), "b", {"score": 7.5, "meta": {"lang": "fr", "tags": ["y"]}})
    store_ops.put(("m",), "c", {"score": "high", "name": "beta"})
    store_ops.put(("m",), "d", {"name": "alpha"})

    def keys(**filter_: Any) -> list[str]:
        return [i.key for i in store_ops.search(("m",), filter=filter_)]

    assert keys(score={"$gt": 3}) == ["b"]
    assert keys(score={"$gte": 3, "$lt": 7.5}) == ["a"]
    assert keys(score={"$ne": 3}) == ["b", "c", "d"]
    assert keys(score={"$eq": 7.5}) == ["b"]
    assert keys(name={"$lt": "c"}) == ["c", "d"]  # strings order as strings
    assert keys(meta={"lang": "fr"}) == ["b"]
    assert keys(meta={"tags": ["x", "y"]}) == ["a"]
    with pytest.raises(ValueError, match="unsupported filter operator '\\$in'"):
        keys(score={"$in": [3]})
    store_ops.put(("m",), "d", None)  # None deletes, as in LangGraph
    assert store_ops.get(("m",), "d") is None


def test_store_list_namespaces(store_ops: Any) -> None:
    store_ops.put(("c", "1"), "a", {"x": 1})
    store_ops.put(("c", "2", "notes"), "a", {"x": 1})
    store_ops.put(("d",), "a", {"x": 1})
    assert store_ops.list_namespaces() == [("c", "1"), ("c", "2", "notes"), ("d",)]
    assert store_ops.list_namespaces(("c",)) == [("c", "1"), ("c", "2", "notes")]
    assert store_ops.list_namespaces(("c",), max_depth=2) == [("c", "1"), ("c", "2")]
    assert store_ops.list_namespaces(suffix=("notes",)) == [("c", "2", "notes")]


def test_store_refuses_bad_input_clearly(store_ops: Any) -> None:
    with pytest.raises(ValueError, match="tuple of strings"):
        store_ops.put("customers", "k", {"x": 1})
    with pytest.raises(ValueError, match="without '.'"):
        store_ops.put(("a.b",), "k", {"x": 1})
    with pytest.raises(ValueError, match="must be a dict"):
        store_ops.put(("a",), "k", ["not", "a", "dict"])
    with pytest.raises(SerializationError):
        store_ops.put(("a",), "k", {"x": object()})
    with pytest.raises(ValueError, match="embedding index"):
        store_ops.search(("a",), query="what does the customer like?")
    assert store_ops.search(("a",)) == []  # nothing was stored by the refused calls
