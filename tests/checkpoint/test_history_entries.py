"""`list_history` (what `get_state_history` reads) against the entries the default port
method makes from `list`: the SQLite saver builds them straight from its rows, and must give
the same checkpoints with the same values, metadata, configs and pending writes."""

from __future__ import annotations

import dataclasses
import gc
import operator
import sys
from pathlib import Path
from typing import Annotated, TypedDict

import pytest

from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig, SqliteSaver
from orchestration.errors import SerializationError
from orchestration.graph import END, START, StateGraph
from orchestration.interrupts import interrupt
from orchestration.types import Command

_DEFAULT_THRESHOLDS = gc.get_threshold()


class Doc(TypedDict):
    items: Annotated[list[str], operator.add]
    n: int
    answer: str


def _grow(state: Doc) -> dict:
    return {"items": [f"item-{state['n']}" * 30], "n": state["n"] + 1}


def _ask(state: Doc) -> dict:
    return {"answer": interrupt({"question": state["n"]})}


def _graph(saver: SqliteSaver):  # type: ignore[no-untyped-def]
    graph = StateGraph(Doc)
    graph.add_node("grow", _grow)
    graph.add_node("ask", _ask)
    graph.add_edge(START, "grow")
    graph.add_conditional_edges("grow", lambda s: "grow" if s["n"] % 12 else "ask")
    graph.add_edge("ask", END)
    return graph.compile(checkpointer=saver)


def _from_list(saver: SqliteSaver, config: CheckpointConfig, **kwargs):  # type: ignore[no-untyped-def]
    return BaseCheckpointSaver.list_history(saver, config, **kwargs)


@pytest.fixture
def saver(tmp_path: Path):  # type: ignore[no-untyped-def]
    with SqliteSaver.from_conn_string(str(tmp_path / "h.db")) as saver:
        yield saver


def _thread_with_fork_and_interrupts(saver: SqliteSaver) -> CheckpointConfig:
    compiled = _graph(saver)
    config = CheckpointConfig("t")
    compiled.invoke({"items": [], "n": 1, "answer": ""}, config)  # pauses at `ask`
    compiled.invoke(Command(resume="yes"), config)
    past = compiled.get_state_history(config)[7].config
    compiled.update_state(past, {"items": ["forked"], "n": 12}, as_node="grow")
    compiled.invoke(None, config)  # the branch pauses at `ask` again: pending writes
    return config


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"limit": 5}, {"filter": {"source": "loop"}}, {"filter": {"step": 3}}],
    ids=["all", "limit", "filter-source", "filter-step"],
)
def test_history_entries_equal_those_made_from_list(saver: SqliteSaver, kwargs: dict) -> None:
    config = _thread_with_fork_and_interrupts(saver)
    fresh = SqliteSaver(saver.path)  # a reader that cached nothing the writer put
    try:
        for reader in (saver, fresh):
            entries = reader.list_history(config, **kwargs)
            assert entries == _from_list(reader, config, **kwargs)
            assert len(entries) > (0 if kwargs else 10)
    finally:
        fresh.close()


def test_history_entries_have_pending_tuples_only_where_writes_are_pending(
    saver: SqliteSaver,
) -> None:
    config = _thread_with_fork_and_interrupts(saver)
    entries = saver.list_history(config)
    pending = [e for e in entries if e[6] is not None]
    assert pending, "the paused branch head has its interrupt's pending write"
    assert entries[-1][6] is not None and entries[-1][6].pending_writes
    assert _graph(saver).get_state_history(config)[0].interrupts


def test_history_entries_before_a_checkpoint(saver: SqliteSaver) -> None:
    config = _thread_with_fork_and_interrupts(saver)
    middle = saver.list(config)[10].config
    assert saver.list_history(config, before=middle) == _from_list(saver, config, before=middle)


def test_history_values_are_each_entrys_own(saver: SqliteSaver) -> None:
    config = _thread_with_fork_and_interrupts(saver)
    history = _graph(saver).get_state_history(config)
    history[3].values["items"].append("changed")
    history[3].values["n"] = -1
    again = _graph(saver).get_state_history(config)
    for i, snapshot in enumerate(history):
        if i != 3:
            assert snapshot.values == again[i].values


def test_subgraph_namespace_history_matches_list(saver: SqliteSaver) -> None:
    inner = StateGraph(Doc)
    inner.add_node("grow", _grow)
    inner.add_edge(START, "grow")
    inner.add_edge("grow", END)
    outer = StateGraph(Doc)
    outer.add_node("sub", inner.compile())
    outer.add_edge(START, "sub")
    outer.add_edge("sub", END)
    compiled = outer.compile(checkpointer=saver)
    compiled.invoke({"items": [], "n": 1, "answer": ""}, CheckpointConfig("s"))
    for ns in ("", "sub"):
        config = CheckpointConfig("s", checkpoint_ns=ns)
        assert saver.list_history(config) == _from_list(saver, config)
    assert [
        e[2].checkpoint_ns for e in saver.list_history(CheckpointConfig("s", checkpoint_ns="sub"))
    ] == [t.config.checkpoint_ns for t in saver.list(CheckpointConfig("s", checkpoint_ns="sub"))]


def test_deleted_thread_has_no_history(saver: SqliteSaver) -> None:
    config = _thread_with_fork_and_interrupts(saver)
    saver.delete_thread("t")
    assert saver.list_history(config) == []
    assert _graph(saver).get_state_history(config) == []


def test_a_listing_runs_without_collections_and_leaves_the_collector_as_it_was(
    saver: SqliteSaver,
) -> None:
    """Listings pause the cyclic collector (`storage.gcpause`): none starts during one, it is
    on again afterwards, still off if it was off, and back on when the read fails."""
    config = _thread_with_fork_and_interrupts(saver)
    compiled = _graph(saver)
    inside: list[str] = []  # the reads a collection started in

    def count(phase: str, info: dict) -> None:
        frame = sys._getframe(1)
        while phase == "start" and frame is not None:
            if frame.f_code.co_name in ("_decode", "_snapshots"):
                inside.append(frame.f_code.co_name)
            frame = frame.f_back

    gc.collect()
    gc.set_threshold(1)  # without the pause, a collection at nearly every allocation
    gc.callbacks.append(count)
    try:
        history = compiled.get_state_history(config)
        listed = saver.list(config)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*_DEFAULT_THRESHOLDS)
    assert inside == [] and gc.isenabled()
    assert len(history) == len(listed) > 10
    gc.disable()
    try:
        assert compiled.get_state_history(config) == history
        assert not gc.isenabled()
    finally:
        gc.enable()
    newest = history[0].config.checkpoint_id
    saver._conn().execute("UPDATE checkpoints SET body = x'c1' WHERE checkpoint_id = ?", (newest,))
    with pytest.raises(SerializationError):
        compiled.get_state_history(config)
    assert gc.isenabled()


class Notes(TypedDict):
    items: Annotated[list[str], operator.add]
    n: int
    note: str | None


def _note(state: Notes) -> dict:
    n = state["n"] + 1
    # A scalar kept in the row: None every third step (a value a lookup could mistake for
    # "absent"), a string repeated in metadata.writes otherwise.
    return {"items": [f"i{n}"], "n": n, "note": None if n % 3 == 0 else f"note {n}"}


def _notes_graph(saver: BaseCheckpointSaver):  # type: ignore[no-untyped-def]
    graph = StateGraph(Notes)
    graph.add_node("note", _note)
    graph.add_edge(START, "note")
    graph.add_conditional_edges("note", lambda s: "note" if s["n"] < 20 else END)
    return graph.compile(checkpointer=saver)


def test_scalars_kept_in_rows_read_back_as_the_memory_saver_gives_them(tmp_path: Path) -> None:
    """The SQLite saver's reads take the scalars kept decoded in rows (None included) from
    the rows themselves, never as stored blobs: a fresh reader's history, list and latest
    tuple give the values and metadata writes the in-memory saver gives."""
    from orchestration.checkpoint.memory import InMemoryCheckpointSaver

    memory = InMemoryCheckpointSaver()
    _notes_graph(memory).invoke({"items": [], "n": 0, "note": None}, CheckpointConfig("m"))
    expected = _notes_graph(memory).get_state_history(CheckpointConfig("m"))
    with SqliteSaver.from_conn_string(str(tmp_path / "n.db")) as writer:
        _notes_graph(writer).invoke({"items": [], "n": 0, "note": None}, CheckpointConfig("s"))
        stored = writer._conn().execute("SELECT count(*) FROM blobs WHERE field = 'note'")
        assert stored.fetchone()[0] == 0, "the notes are kept in their rows"
    with SqliteSaver.from_conn_string(str(tmp_path / "n.db")) as reader:
        history = _notes_graph(reader).get_state_history(CheckpointConfig("s"))
        listed = reader.list(CheckpointConfig("s"))
        latest = reader.get_tuple(CheckpointConfig("s"))
    assert len(history) == len(expected) > 20
    assert [s.values for s in history] == [s.values for s in expected]
    assert [s.metadata.writes for s in history] == [s.metadata.writes for s in expected]
    assert [s.values["note"] for s in history[:4]] == ["note 20", "note 19", None, "note 17"]
    assert [t.checkpoint.values for t in reversed(listed)] == [s.values for s in history]
    assert latest is not None and latest.checkpoint.values == history[0].values


def test_history_builds_the_frozen_classes_themselves(saver: SqliteSaver) -> None:
    """`get_state_history` fills its snapshots, configs and metadata without their
    constructors: each is of the class itself, equal to (and hashing as) what the
    constructors build from the same fields, and immutable."""
    from orchestration.checkpoint import CheckpointMetadata
    from orchestration.pregel.records import RecordSnapshot
    from orchestration.types import StateSnapshot

    config = _thread_with_fork_and_interrupts(saver)
    history = _graph(SqliteSaver(saver.path)).get_state_history(config)
    assert len(history) > 10
    for snapshot in history:
        # (a record: its `tasks` are built when first read, see pregel/records.py)
        assert type(snapshot) is RecordSnapshot
        assert snapshot == StateSnapshot(
            *(getattr(snapshot, f.name) for f in dataclasses.fields(StateSnapshot))
        )
        for made in (snapshot.config, snapshot.parent_config):
            if made is None:
                continue
            assert type(made) is CheckpointConfig
            rebuilt = CheckpointConfig(made.thread_id, made.checkpoint_id, made.checkpoint_ns)
            assert made == rebuilt and hash(made) == hash(rebuilt)
        metadata = snapshot.metadata
        assert type(metadata) is CheckpointMetadata
        assert metadata == CheckpointMetadata(
            metadata.source, metadata.step, metadata.writes, metadata.extra
        )
        with pytest.raises(dataclasses.FrozenInstanceError):
            snapshot.next = ()  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            metadata.step = 0  # type: ignore[misc]
