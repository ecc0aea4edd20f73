"""The storage core: only changed fields are stored, appends store only the new items."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestration.checkpoint import Checkpoint, CheckpointMetadata, storage
from orchestration.checkpoint.base import new_checkpoint_id


def _put(cache: storage.ValueCache, parent: Checkpoint | None, values: dict, changed: set[str],
         writes: dict | None = None) -> tuple[Checkpoint, storage.EncodedPut]:
    cid = new_checkpoint_id()
    versions = {k: (cid if k in changed or parent is None else parent.versions[k]) for k in values}
    cp = Checkpoint(cid, datetime.now(UTC), values, versions)
    encoded = storage.encode_checkpoint(
        "t", parent.id if parent else None, cp, CheckpointMetadata("loop", 0, writes=writes or {}),
        cache,
    )
    storage.remember_put(cache, encoded)
    return cp, encoded


def test_unchanged_fields_store_no_blob() -> None:
    cache = storage.ValueCache()
    first, _ = _put(cache, None, {"a": 1, "b": "x" * 100}, {"a", "b"})
    _, second = _put(cache, first, {"a": 2, "b": "x" * 100}, {"a"})
    assert [b.field for b in second.blobs] == ["a"]


def test_list_that_grew_is_stored_as_the_appended_items() -> None:
    cache = storage.ValueCache()
    first, _ = _put(cache, None, {"topic": ["a" * 50]}, {"topic"})
    _, second = _put(cache, first, {"topic": ["a" * 50, "b" * 50]}, {"topic"})
    (blob,) = second.blobs
    assert blob.kind == storage.APPEND and blob.base == first.id
    assert b"a" * 50 not in blob.data and b"b" * 50 in blob.data


def test_list_that_changed_otherwise_is_stored_whole() -> None:
    cache = storage.ValueCache()
    first, _ = _put(cache, None, {"topic": ["a", "b"]}, {"topic"})
    _, second = _put(cache, first, {"topic": ["b", "a", "c"]}, {"topic"})
    assert second.blobs[0].kind == storage.FULL


def test_without_the_parent_value_cached_a_full_blob_is_written() -> None:
    first, _ = _put(storage.ValueCache(), None, {"topic": ["a"]}, {"topic"})
    _, second = _put(storage.ValueCache(), first, {"topic": ["a", "b"]}, {"topic"})
    assert second.blobs[0].kind == storage.FULL


def test_node_update_repeating_the_appended_items_is_stored_once() -> None:
    cache = storage.ValueCache()
    item = "z" * 1000
    first, _ = _put(cache, None, {"topic": []}, {"topic"})
    _, second = _put(cache, first, {"topic": [item]}, {"topic"}, writes={"n": {"topic": [item]}})
    assert item.encode() not in second.record.meta
    assert len(second.record.meta) < 100


def test_an_unserializable_field_or_write_is_named_in_the_error() -> None:
    """The errors' text is built only when packing fails: it still names the value."""
    import pytest

    from orchestration.errors import SerializationError

    cache = storage.ValueCache()
    with pytest.raises(SerializationError, match=r"state field 'bad'") as caught:
        _put(cache, None, {"ok": 1, "bad": object()}, {"ok", "bad"})
    assert caught.value.field == "bad"
    # A node's update that differs from the field it wrote: packed for a reference, and it
    # is the update (not the field) that cannot be packed.
    with pytest.raises(SerializationError, match=r"metadata\.writes\['n'\]\['items'\]"):
        _put(cache, None, {"items": [1, 2, 3]}, {"items"}, writes={"n": {"items": object()}})


def test_node_update_of_small_values_is_stored_as_it_is() -> None:
    """An update that refers to nothing (a counter, a short string) is stored whole, mode 0:
    fewer bytes than entries of kind 0, and a saver reads the same update back."""
    from orchestration.checkpoint import serde

    cache = storage.ValueCache()
    update = {"counter": 7, "note": "step", 3: None}
    first, _ = _put(cache, None, {"counter": 6, "note": "go"}, {"counter", "note"})
    _, second = _put(
        cache, first, {"counter": 7, "note": "step"}, {"counter", "note"}, writes={"n": update}
    )
    writes = serde.loads(second.record.meta)[0]
    assert writes == [["n", 0, update]]


def test_small_and_referred_values_of_one_update_read_back_through_a_saver(tmp_path) -> None:
    """Mode 0 (nothing referred to) and mode 1 (a list found in the field it appended to)
    read back as the updates that were written."""
    from orchestration.checkpoint import CheckpointConfig, SqliteSaver

    item = "z" * 100
    with SqliteSaver(tmp_path / "c.sqlite3") as saver:
        config = CheckpointConfig("t")
        for step, writes in enumerate([
            {"n": {"counter": 1, "note": "step"}},
            {"n": {"topic": [item], "counter": 2}, "m": {"note": "x"}},
        ]):
            cid = new_checkpoint_id()
            values = {"counter": step + 1, "note": "step", "topic": [item] * step}
            cp = Checkpoint(cid, datetime.now(UTC), values, {k: cid for k in values})
            config = saver.put(config, cp, CheckpointMetadata("loop", step, writes=writes))
            found = saver.get_tuple(config)
            assert found is not None and found.metadata.writes == writes


def test_the_head_of_a_long_append_chain_is_read_in_linear_memory(tmp_path) -> None:
    """A list field appended to at every step is stored as a chain of appends; a saver with
    an empty cache (a worker's, a page's) rebuilds the head's list from the whole chain. Built
    version by version, each version's list copied its base's: every one of the chain's
    lists was alive at once (~9 MB of list slots here, 0.4 s per read of a 7,500-step
    thread). One decode of the chain's items keeps the read to the size of the list."""
    import tracemalloc

    from orchestration.checkpoint import CheckpointConfig, SqliteSaver

    steps = 1500
    path = tmp_path / "chain.sqlite3"
    with SqliteSaver(path) as writer:
        config, parent, values = CheckpointConfig("t"), None, []
        for step in range(steps):
            values = [*values, step]
            cid = new_checkpoint_id()
            versions = {"log": cid, "n": cid}
            cp = Checkpoint(cid, datetime.now(UTC), {"log": values, "n": step}, versions)
            config = writer.put(config, cp, CheckpointMetadata("loop", step))
            parent = cp
    assert parent is not None
    with SqliteSaver(path) as reader:
        reader.get_tuple(CheckpointConfig("t", checkpoint_id=new_checkpoint_id()))  # warm up
        tracemalloc.start()
        try:
            head = reader.get_tuple(CheckpointConfig("t"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert head is not None and head.checkpoint.id == parent.id
        assert head.checkpoint.values["log"] == list(range(steps))
        assert peak < 3_000_000, f"reading the head allocated {peak:,} bytes at its peak"
        # the head's list is the caller's own: the parent read afterwards is unchanged
        head.checkpoint.values["log"].append("mine")
        assert head.parent_config is not None
        before = reader.get_tuple(head.parent_config)
        assert before is not None and before.checkpoint.values["log"] == list(range(steps - 1))


def test_a_new_saver_reads_a_long_chains_head_in_a_few_statements(tmp_path) -> None:
    """The chain of a list appended to at every step runs through the rows of every
    checkpoint, some links too big for a row (in `blobs`), beside other fields' versions. A
    saver with an empty cache found one more link per query: a head of 3,000 steps took 3,000
    queries, each walking the chain found so far (4-5 s). It now reads rows further down each
    time, and every checkpoint still reads back whole."""
    from orchestration.checkpoint import CheckpointConfig, SqliteSaver

    steps = 1500
    path = tmp_path / "chain.sqlite3"
    written: list[Checkpoint] = []
    with SqliteSaver(path) as writer:
        config, values = CheckpointConfig("t"), []
        for step in range(steps):
            # every 97th item is too big for the row: that link of the chain goes to `blobs`
            values = [*values, "x" * 600 if step % 97 == 5 else step]
            cid = new_checkpoint_id()
            note = written[-1].versions["note"] if step % 10 and written else cid
            versions = {"log": cid, "n": cid, "note": note}
            cp = Checkpoint(cid, datetime.now(UTC),
                            {"log": values, "n": step, "note": f"n{step // 10}"}, versions)
            config = writer.put(config, cp, CheckpointMetadata("loop", step))
            written.append(cp)
    with SqliteSaver(path) as reader:
        statements: list[str] = []
        reader._conn().set_trace_callback(statements.append)
        head = reader.get_tuple(CheckpointConfig("t"))
        reader._conn().set_trace_callback(None)
        assert head is not None and head.checkpoint.values == written[-1].values
        assert len(statements) < steps // 20, f"{len(statements)} statements read the head"
    for cp in (written[0], written[5], written[700], written[-2]):
        with SqliteSaver(path) as reader:  # each from an empty cache
            found = reader.get_tuple(CheckpointConfig("t", checkpoint_id=cp.id))
            assert found is not None and found.checkpoint.values == cp.values
