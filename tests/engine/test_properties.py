"""Property tests: reducers and the order writes apply in are deterministic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration import END, START, StateGraph
from orchestration.reducers import merge, topic

items = st.lists(st.integers(), max_size=5)


@given(st.lists(items, max_size=6))
def test_topic_keeps_every_item_in_update_order(updates: list[list[int]]) -> None:
    value: list[int] = []
    for update in updates:
        value = topic(value, update)
    assert value == [x for update in updates for x in update]


small_dicts = st.dictionaries(st.text(max_size=3), st.integers())


@given(small_dicts, small_dicts)
def test_merge_update_keys_win(current: dict[str, int], update: dict[str, int]) -> None:
    merged = merge(current, update)
    assert set(merged) == set(current) | set(update)
    assert all(merged[k] == v for k, v in update.items())


@dataclass
class Bag:
    seen: Annotated[list[str], topic] = field(default_factory=list)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6, unique=True))
def test_parallel_writes_apply_in_node_name_order_whatever_finishes_first(
    names: list[str],
) -> None:
    """LangGraph's order (tasks sorted by path): by node name, not the order the edges were
    added in (tests/compat/programs/fan_out_order.py compares the two)."""
    graph = StateGraph(Bag)
    for name in names:
        graph.add_node(name, lambda s, n=name: {"seen": [n]})
        graph.add_edge(START, name).add_edge(name, END)
    compiled = graph.compile()
    runs = {tuple(compiled.invoke(None).seen) for _ in range(3)}
    assert runs == {tuple(sorted(names))}
