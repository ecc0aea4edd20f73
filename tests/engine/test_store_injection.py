"""The store reaches nodes: a `store` parameter or `get_store()`; it outlives threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import pytest

from orchestration import END, StateGraph, get_store
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig
from orchestration.store import BaseStore, InMemoryStore, SqliteStore


class State(TypedDict, total=False):
    customer: str
    fact: str
    known: list[str]


def remember(s: State, store: BaseStore) -> dict[str, Any]:
    if s.get("fact"):
        store.put(("customers", s["customer"]), s["fact"], {"fact": s["fact"]})
    return {}


def recall(s: State) -> dict[str, Any]:
    items = get_store().search(("customers", s["customer"]))
    return {"known": [i.value["fact"] for i in items]}


def graph(store: BaseStore | None, saver: BaseCheckpointSaver) -> Any:
    return (
        StateGraph(State)
        .add_node("remember", remember)
        .add_node("recall", recall)
        .set_entry_point("remember")
        .add_edge("remember", "recall")
        .add_edge("recall", END)
        .compile(checkpointer=saver, store=store)
    )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_memory_outlives_the_thread(kind: str, saver: BaseCheckpointSaver, tmp_path: Path) -> None:
    store: BaseStore = InMemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")
    g = graph(store, saver)
    g.invoke({"customer": "c1", "fact": "likes tea"}, CheckpointConfig("a"))
    g.invoke({"customer": "c2", "fact": "likes coffee"}, CheckpointConfig("b"))
    later = g.invoke({"customer": "c1", "fact": "has a dog"}, CheckpointConfig("c"))
    assert later["known"] == ["likes tea", "has a dog"]


def test_with_store_returns_a_new_graph(saver: BaseCheckpointSaver) -> None:
    g = graph(None, saver)
    store = InMemoryStore()
    bound = g.with_store(store)
    assert bound.store is store and g.store is None
    bound.invoke({"customer": "c", "fact": "f"}, CheckpointConfig("x"))
    assert store.get(("customers", "c"), "f") is not None


def test_get_store_without_a_store_says_how_to_attach_one(saver: BaseCheckpointSaver) -> None:
    g = graph(None, saver)
    with pytest.raises(Exception, match=r"compile\(store="):
        g.invoke({"customer": "c"}, CheckpointConfig("y"))


def test_sqlite_store_file_is_private_and_takes_a_connection(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "store.db"
    SqliteStore(path).put(("a",), "k", {"v": 1})
    assert path.stat().st_mode & 0o777 == 0o600
    conn = sqlite3.connect(path, check_same_thread=False)
    given = SqliteStore(conn)
    given.setup()
    given.setup()
    assert given.get(("a",), "k").value == {"v": 1}  # type: ignore[union-attr]
    with SqliteStore.from_conn_string(str(tmp_path / "other.db")) as store:
        store.put(("b",), "k", {"v": 2})
        assert [i.key for i in store.search(("b",))] == ["k"]
