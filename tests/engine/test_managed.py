"""Managed values (`orchestration.managed`) beyond the LangGraph comparison
(`tests/compat/programs/managed_values.py`): refused input, dataclass and pydantic states,
routers at START and after `update_state`, async runs."""

from __future__ import annotations

import asyncio
import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired, TypedDict

import pydantic
import pytest

from orchestration import END, START, InvalidUpdateError, StateGraph
from orchestration.checkpoint import InMemorySaver
from orchestration.managed import IsLastStep, RemainingSteps


class Loop(TypedDict):
    seen: Annotated[list[int], operator.add]
    left: RemainingSteps


def counter(state: Any) -> dict[str, Any]:
    left = state["left"] if isinstance(state, dict) else state.left
    return {"seen": [left]}


def until(limit: int) -> Any:
    def route(state: Any) -> str:
        left = state["left"] if isinstance(state, dict) else state.left
        return END if left <= limit else "count"

    return route


def loop_graph(schema: Any, saver: Any = None) -> Any:
    builder = StateGraph(schema).add_node("count", counter).add_edge(START, "count")
    return builder.add_conditional_edges("count", until(3)).compile(checkpointer=saver)


def test_a_caller_giving_a_managed_value_is_refused_with_what_to_do() -> None:
    with pytest.raises(InvalidUpdateError, match=r"\['left'\].*engine sets.*leave it out"):
        loop_graph(Loop).invoke({"seen": [], "left": 99})


def test_managed_values_are_neither_stored_nor_returned() -> None:
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 7}
    result = loop_graph(Loop, saver).invoke({"seen": []}, config)
    assert result == {"seen": [6, 5, 4, 3]}
    assert "left" not in saver.get_tuple(config).checkpoint.values
    assert all("left" not in s.values for s in loop_graph(Loop, saver).get_state_history(config))


@dataclass
class DataLoop:
    seen: Annotated[list[int], operator.add] = field(default_factory=list)
    left: RemainingSteps = 0


class ModelLoop(pydantic.BaseModel):
    seen: Annotated[list[int], operator.add] = []
    left: RemainingSteps = 0


@pytest.mark.parametrize("schema", [DataLoop, ModelLoop])
def test_dataclass_and_pydantic_states_read_them_too(schema: Any) -> None:
    result = loop_graph(schema).invoke(schema(), {"recursion_limit": 6})
    assert result.seen == [5, 4, 3]


def test_a_dataclass_managed_field_without_a_default_is_refused_when_built() -> None:
    @dataclass
    class NoDefault:
        left: RemainingSteps

    with pytest.raises(TypeError, match=r"\['left'\].*need a default"):
        StateGraph(NoDefault)


def test_a_router_at_start_and_after_update_state_reads_a_budget() -> None:
    class State(TypedDict):
        path: Annotated[list[str], operator.add]
        left: RemainingSteps
        last: IsLastStep

    def first(state: State) -> dict[str, Any]:
        return {"path": [f"first {state['left']} {state['last']}"]}

    def start(state: State) -> str:
        return "first" if state["left"] >= 3 else END

    saver = InMemorySaver()
    builder = StateGraph(State).add_node("first", first)
    builder.add_conditional_edges(START, start)
    builder.add_conditional_edges("first", lambda s: END if s["left"] < 100 else "first")
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "s"}, "recursion_limit": 3}
    assert graph.invoke({"path": []}, config) == {"path": ["first 2 False"]}
    assert graph.invoke({"path": []}, {**config, "recursion_limit": 2}) == {
        "path": ["first 2 False"]  # the START router saw 2 and stopped: nothing ran
    }
    graph.update_state(config, {"path": ["edited"]}, as_node="first")
    # no call runs an update: its router read the default budget (10,000), so: first again
    assert graph.get_state(config).next == ("first",)


def test_async_runs_count_the_same() -> None:
    class State(TypedDict):
        seen: Annotated[list[int], operator.add]
        left: RemainingSteps

    async def count(state: State) -> dict[str, Any]:
        return {"seen": [state["left"]]}

    async def route(state: State) -> str:
        return END if state["left"] <= 2 else "count"

    builder = StateGraph(State).add_node("count", count).add_edge(START, "count")
    graph = builder.add_conditional_edges("count", route).compile()
    result = asyncio.run(graph.ainvoke({"seen": []}, {"recursion_limit": 5}))
    assert result == {"seen": [4, 3, 2]}


def test_a_managed_field_marked_not_required_is_managed_too() -> None:
    class Loose(TypedDict):
        seen: Annotated[list[int], operator.add]
        left: NotRequired[RemainingSteps]

    assert loop_graph(Loose).invoke({"seen": []}, {"recursion_limit": 5}) == {"seen": [4, 3]}
