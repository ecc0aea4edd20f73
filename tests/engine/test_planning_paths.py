"""Supersteps planned from the compiled route table (plain edges only) must go exactly where the
full planner would: Command gotos first, then edges, each next node once; and the cheaper
bookkeeping must keep stored values and pending-write ids as they were."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from orchestration import END, START, Command, StateGraph, interrupt
from orchestration.interrupts import interrupt_id
from orchestration.pregel.plan import task_id
from orchestration.reducers import topic


class Flow(TypedDict):
    log: Annotated[list[str], topic]
    value: int


def writer(name: str):  # noqa: ANN201 - a node factory
    def node(state: Flow) -> dict:
        return {"log": [name]}

    return node


def test_command_goto_and_a_plain_edge_both_run_with_the_goto_planned_first(
    saver, config
) -> None:
    """`next` lists the goto first; their writes apply by node name, as LangGraph's do."""
    def a(state: Flow) -> Command:
        return Command(update={"log": ["a"]}, goto="c")

    graph = StateGraph(Flow).add_node("a", a).add_node("b", writer("b")).add_node("c", writer("c"))
    graph.add_edge(START, "a").add_edge("a", "b").add_edge("b", END).add_edge("c", END)
    result = graph.compile(checkpointer=saver).invoke({"value": 0}, config)
    assert [t.checkpoint.next for t in saver.list(config)][1] == ("c", "b")
    assert result["log"] == ["a", "b", "c"]


def test_parallel_tasks_with_edges_to_one_node_schedule_it_once(saver, config) -> None:
    graph = StateGraph(Flow)
    for name in ("a", "b", "c"):
        graph.add_node(name, writer(name))
    graph.add_edge(START, "a").add_edge(START, "b").add_edge("a", "c").add_edge("b", "c")
    result = graph.add_edge("c", END).compile(checkpointer=saver).invoke({"value": 0}, config)
    assert [t.checkpoint.next for t in saver.list(config)] == [("a", "b"), ("c",), ()]
    assert result["log"] == ["a", "b", "c"]


def test_a_node_mutating_its_state_in_place_does_not_change_stored_values(saver, config) -> None:
    def meddle(state: Flow) -> dict:
        state["value"] = 99  # the node's own copy of the state: the engine's is untouched
        return {}

    graph = StateGraph(Flow).add_node("meddle", meddle).add_node("after", writer("after"))
    graph.add_edge(START, "meddle").add_edge("meddle", "after").add_edge("after", END)
    result = graph.compile(checkpointer=saver).invoke({"value": 1, "log": ["in"]}, config)
    assert saver.list(config)[1].checkpoint.values == {"value": 1, "log": ["in"]}
    assert result == {"value": 1, "log": ["in", "after"]}
    assert saver.get_tuple(config).checkpoint.values["value"] == 1


def test_a_paused_tasks_writes_are_keyed_by_its_checkpoint_slot(saver, config) -> None:
    """Threads paused by earlier versions must still resume: the ids stay derived the same
    way from (checkpoint id, task index, node)."""

    def ask(state: Flow) -> dict[str, Any]:
        return {"value": interrupt("how much?")}

    graph = StateGraph(Flow).add_node("ask", ask).add_edge(START, "ask").add_edge("ask", END)
    graph.compile(checkpointer=saver).invoke({"value": 0}, config)
    paused = saver.get_tuple(config)
    expected_task = task_id(paused.checkpoint.id, 0, "ask")
    assert {w.task_id for w in paused.pending_writes} == {expected_task}
    record = next(w.value for w in paused.pending_writes if w.channel == "__interrupt__")
    assert record["id"] == interrupt_id(expected_task, 0)
