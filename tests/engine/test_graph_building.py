"""Building graphs: chaining, and compile() listing every problem at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from orchestration import END, START, Command, GraphRecursionError, GraphValidationError, StateGraph


@dataclass
class S:
    x: int = 0


def noop(state: S) -> None:
    return None


def problems_of(graph: StateGraph, **kwargs: object) -> tuple[str, ...]:
    with pytest.raises(GraphValidationError) as caught:
        graph.compile(**kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def test_builder_methods_return_the_graph_so_calls_chain() -> None:
    graph = StateGraph(S)
    assert graph.add_node("a", noop) is graph
    assert graph.set_entry_point("a") is graph
    assert graph.add_edge("a", END) is graph
    assert graph.add_conditional_edges("a", lambda s: END, {END: END}) is graph
    assert graph.set_finish_point("a") is graph


def test_edge_to_unknown_node_is_reported() -> None:
    graph = StateGraph(S).add_node("a", noop).set_entry_point("a").add_edge("a", "ghost")
    assert any("unknown node 'ghost'" in p for p in problems_of(graph))


def test_missing_entry_point_is_reported() -> None:
    graph = StateGraph(S).add_node("a", noop).add_edge("a", END)
    assert any("no entry point" in p for p in problems_of(graph))


def test_a_node_no_static_edge_reaches_is_allowed() -> None:
    # Third round (LangGraph's rule): a Command(goto=...) may reach it.
    graph = (
        StateGraph(S)
        .add_node("a", noop)
        .add_node("island", noop)
        .set_entry_point("a")
        .set_finish_point("a")
        .set_finish_point("island")
    )
    graph.compile()


def test_a_node_without_outgoing_edge_ends_its_path() -> None:
    # Third round: no "dead end" refusal; the path ends there, as at an edge to END.
    ran = []
    graph = StateGraph(S).add_node("a", lambda s: ran.append("a")).set_entry_point("a")
    graph.add_node("b", lambda s: ran.append("b")).add_edge("a", "b")
    graph.compile().invoke(None)
    assert ran == ["a", "b"]


def test_a_loop_without_path_to_end_is_stopped_by_the_recursion_limit() -> None:
    graph = StateGraph(S).add_node("a", noop).add_node("b", noop).set_entry_point("a")
    graph.add_edge("a", "b").add_edge("b", "a")
    with pytest.raises(GraphRecursionError, match="Nothing was saved"):
        graph.compile().invoke(None, recursion_limit=6)


@pytest.mark.parametrize("name", [START, END, "__private", "", "tools:1", "outer|inner"])
def test_reserved_or_empty_node_names_are_refused(name: str) -> None:
    graph = StateGraph(S).add_node(name, noop).add_node("a", noop).set_entry_point("a")
    graph.set_finish_point("a")
    found = problems_of(graph)
    assert len(found) == 1
    assert "reserved" in found[0] or "empty" in found[0]


def test_duplicate_node_name_is_refused() -> None:
    graph = StateGraph(S).add_node("a", noop).add_node("a", noop)
    graph.set_entry_point("a").set_finish_point("a")
    assert problems_of(graph) == ("node 'a' is added twice",)


def test_every_problem_is_listed_at_once() -> None:
    graph = StateGraph(S).add_node("a", noop).add_node("a", noop).add_node("b", noop)
    graph.add_edge("a", "nowhere")
    found = problems_of(graph, interrupt_before=["ghost"])
    text = "\n".join(found)
    for expected in ("added twice", "unknown node 'nowhere'", "no entry point",
                     "interrupt_before names unknown node 'ghost'"):
        assert expected in text
    assert len(found) == 4


def test_path_map_target_unknown_is_reported() -> None:
    graph = StateGraph(S).add_node("a", noop).set_entry_point("a")
    graph.add_conditional_edges("a", lambda s: "x", {"x": "missing", "y": END})
    assert any("unknown node 'missing'" in p for p in problems_of(graph))


def test_router_without_path_map_counts_as_reaching_every_node() -> None:
    graph = StateGraph(S).add_node("a", noop).add_node("b", noop).set_entry_point("a")
    graph.add_conditional_edges("a", lambda s: "b").set_finish_point("b")
    graph.compile()


def test_command_annotation_makes_its_targets_reachable() -> None:
    def hop(state: S) -> Command[Literal["b"]]:
        return Command(goto="b")

    graph = StateGraph(S).add_node("a", hop).add_node("b", noop).set_entry_point("a")
    graph.set_finish_point("b")
    graph.compile()


def test_join_edge_sources_are_validated() -> None:
    graph = StateGraph(S).add_node("a", noop).add_node("c", noop).set_entry_point("a")
    graph.add_edge(["a", "ghost"], "c").set_finish_point("c")
    assert any("unknown node 'ghost'" in p for p in problems_of(graph))


def test_schema_that_is_not_a_dataclass_typeddict_or_model_is_refused() -> None:
    with pytest.raises(TypeError, match="dataclass"):
        StateGraph(int)


def test_get_graph_draws_offline_and_says_so_for_a_png() -> None:
    graph = StateGraph(S)
    graph.add_node("count", lambda state: {})
    graph.add_edge(START, "count")
    drawn = graph.compile().get_graph()
    assert [(e.source, e.target, e.conditional) for e in drawn.edges] == [
        ("__start__", "count", False), ("count", "__end__", False)]  # no edge: ends there
    assert "\t__start__ --> count;\n" in drawn.draw_mermaid()
    with pytest.raises(NotImplementedError, match="works offline"):
        drawn.draw_mermaid_png()
