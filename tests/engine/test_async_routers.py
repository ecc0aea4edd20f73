"""`async def` routers: awaited under ainvoke, run on a private loop under invoke."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import pytest

from orchestration import END, START, Send, StateGraph
from orchestration.reducers import topic


@dataclass
class Log:
    log: Annotated[list[str], topic] = field(default_factory=list)
    value: int = 0


async def by_value(state: Log) -> str:
    await asyncio.sleep(0)
    return "big" if state.value > 5 else "small"


def routed_graph(saver=None):  # noqa: ANN001, ANN201 - a graph factory
    graph = StateGraph(Log).add_node("start", lambda s: {"log": ["start"]})
    graph.add_node("big", lambda s: {"log": ["big"]})
    graph.add_node("small", lambda s: {"log": ["small"]})
    graph.set_entry_point("start").add_conditional_edges("start", by_value, ["big", "small"])
    graph.set_finish_point("big").set_finish_point("small")
    return graph.compile(checkpointer=saver)


async def test_async_router_is_awaited_under_ainvoke() -> None:
    assert (await routed_graph().ainvoke({"value": 9})).log == ["start", "big"]


def test_async_router_runs_under_sync_invoke() -> None:
    assert routed_graph().invoke({"value": 1}).log == ["start", "small"]


async def test_sync_invoke_inside_a_running_loop_still_runs_an_async_router() -> None:
    assert routed_graph().invoke({"value": 9}).log == ["start", "big"]


async def test_async_conditional_entry_point_picks_the_first_node() -> None:
    graph = StateGraph(Log).add_node("big", lambda s: {"log": ["big"]})
    graph.add_node("small", lambda s: {"log": ["small"]})
    graph.add_conditional_edges(START, by_value, ["big", "small"])
    compiled = graph.set_finish_point("big").set_finish_point("small").compile()
    assert (await compiled.ainvoke({"value": 7})).log == ["big"]
    assert compiled.invoke({"value": 0}).log == ["small"]


async def test_async_router_can_fan_out_with_send() -> None:
    async def fan(state: Log) -> list[Send]:
        return [Send("work", f"job{i}") for i in range(3)]

    graph = StateGraph(Log).add_node("plan", lambda s: None).add_node(
        "work", lambda job: {"log": [job]}
    )
    graph.set_entry_point("plan").add_conditional_edges("plan", fan).add_edge("work", END)
    assert sorted((await graph.compile().ainvoke(None)).log) == ["job0", "job1", "job2"]


async def test_a_failing_async_router_raises_its_own_exception_noted(saver, config) -> None:
    async def broken(state: Log) -> str:
        raise ValueError("cannot decide")

    graph = StateGraph(Log).add_node("a", lambda s: {"log": ["a"]}).set_entry_point("a")
    graph.add_conditional_edges("a", broken, [END])
    compiled = graph.compile(checkpointer=saver)
    with pytest.raises(ValueError, match="cannot decide") as caught:
        await compiled.ainvoke(None, config)
    assert any("after node 'a' in step 1" in note for note in caught.value.__notes__)
    with pytest.raises(ValueError, match="cannot decide"):
        compiled.invoke(None, config.with_checkpoint_id(None))


def test_update_state_as_node_awaits_its_async_router(saver, config) -> None:
    compiled = routed_graph(saver)
    compiled.update_state(config, {"value": 8}, as_node="start")
    assert compiled.get_state(config).next == ("big",)


def test_a_sync_router_returning_an_awaitable_is_refused_with_the_fix() -> None:
    graph = StateGraph(Log).add_node("a", lambda s: None).set_entry_point("a")
    graph.add_conditional_edges("a", lambda s: by_value(s), ["big", "small"])
    graph.add_node("big", lambda s: None).add_node("small", lambda s: None)
    compiled = graph.set_finish_point("big").set_finish_point("small").compile()
    with pytest.raises(TypeError, match="async def"):
        compiled.invoke(None)
