"""Running graphs: supersteps, reducers, parallel tasks, joins, routing, Send, Command, streams."""

from __future__ import annotations

import asyncio
import operator
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

import pytest
from pydantic import BaseModel

from orchestration import (
    END,
    START,
    Command,
    GraphRecursionError,
    InvalidUpdateError,
    RetryPolicy,
    Send,
    StateGraph,
)
from orchestration.checkpoint import CheckpointConfig, InMemoryCheckpointSaver
from orchestration.reducers import merge, topic


@dataclass
class Log:
    log: Annotated[list[str], topic] = field(default_factory=list)
    value: int = 0


def writer(name: str):  # noqa: ANN201 - a node factory
    def node(state: Any) -> dict:
        return {"log": [name]}

    node.__name__ = name
    return node


def linear(*names: str) -> StateGraph:
    graph = StateGraph(Log)
    previous = START
    for name in names:
        graph.add_node(name, writer(name)).add_edge(previous, name)
        previous = name
    return graph.add_edge(previous, END)


def test_linear_graph_runs_each_node_once_in_order() -> None:
    result = linear("a", "b", "c").compile().invoke(None)
    assert result == Log(log=["a", "b", "c"])


def test_graph_runs_without_a_saver() -> None:
    assert linear("a").compile().invoke({"value": 3}).value == 3


def test_one_checkpoint_per_superstep_after_the_input_checkpoint(saver, config) -> None:
    linear("a", "b").compile(checkpointer=saver).invoke(None, config)
    tuples = saver.list(config)
    assert [(t.metadata.source, t.metadata.step) for t in tuples] == [
        ("input", 0), ("loop", 1), ("loop", 2)
    ]
    assert [t.checkpoint.next for t in tuples] == [("a",), ("b",), ()]
    assert tuples[1].metadata.writes == {"a": {"log": ["a"]}}
    assert tuples[0].parent_config is None
    assert tuples[2].parent_config == tuples[1].config


def test_versions_name_the_checkpoint_that_last_changed_each_field(saver, config) -> None:
    graph = StateGraph(Log).add_node("a", lambda s: {"value": 1}).add_node("b", writer("b"))
    graph.set_entry_point("a").add_edge("a", "b").set_finish_point("b")
    graph.compile(checkpointer=saver).invoke(None, config)
    first, second, third = (t.checkpoint for t in saver.list(config))
    assert first.versions == {"log": first.id, "value": first.id}
    assert second.versions == {"log": first.id, "value": second.id}
    assert third.versions == {"log": third.id, "value": second.id}


def test_parallel_tasks_run_in_one_superstep_and_apply_in_task_order(saver, config) -> None:
    graph = StateGraph(Log)
    for name in ("a", "b", "c"):
        graph.add_node(name, writer(name)).add_edge(START, name).add_edge(name, END)
    result = graph.compile(checkpointer=saver).invoke(None, config)
    assert result.log == ["a", "b", "c"]
    assert len(saver.list(config)) == 2


def test_parallel_sync_tasks_run_on_threads_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def meet(state: Log) -> dict:
        barrier.wait()  # deadlocks (BrokenBarrierError) unless both run at once
        return {"log": [threading.current_thread().name]}

    graph = StateGraph(Log).add_node("a", meet).add_node("b", meet)
    graph.add_edge(START, "a").add_edge(START, "b").set_finish_point("a").set_finish_point("b")
    assert len(set(graph.compile().invoke(None).log)) == 2


def test_single_task_runs_inline_on_the_callers_thread() -> None:
    seen = []
    graph = StateGraph(Log).add_node("a", lambda s: seen.append(threading.current_thread()))
    graph.set_entry_point("a").set_finish_point("a").compile().invoke(None)
    assert seen == [threading.current_thread()]


def test_two_tasks_writing_a_last_value_field_in_one_step_is_refused() -> None:
    graph = StateGraph(Log).add_node("a", lambda s: {"value": 1})
    graph.add_node("b", lambda s: {"value": 2})
    graph.add_edge(START, "a").add_edge(START, "b").set_finish_point("a").set_finish_point("b")
    with pytest.raises(InvalidUpdateError, match="'a' and 'b' both wrote 'value'"):
        graph.compile().invoke(None)


def test_unknown_key_in_a_node_update_names_node_and_key() -> None:
    graph = StateGraph(Log).add_node("a", lambda s: {"nope": 1}).set_entry_point("a")
    with pytest.raises(InvalidUpdateError, match="node 'a' returned key 'nope'"):
        graph.set_finish_point("a").compile().invoke(None)


def test_a_node_returning_a_non_mapping_is_refused() -> None:
    graph = StateGraph(Log).add_node("a", lambda s: 42).set_entry_point("a").set_finish_point("a")
    with pytest.raises(InvalidUpdateError, match=r"node 'a' returned 42 \(type int\)"):
        graph.compile().invoke(None)


def test_join_waits_for_both_sources_even_across_supersteps() -> None:
    graph = StateGraph(Log)
    for name in ("a", "b1", "b2", "c"):
        graph.add_node(name, writer(name))
    graph.add_edge(START, "a").add_edge(START, "b1").add_edge("b1", "b2")
    graph.add_edge(["a", "b2"], "c").set_finish_point("c")
    assert graph.compile().invoke(None).log == ["a", "b1", "b2", "c"]


def test_conditional_edge_with_path_map_routes_on_state() -> None:
    graph = StateGraph(Log).add_node("check", lambda s: None)
    graph.add_node("big", writer("big")).add_node("small", writer("small"))
    graph.set_entry_point("check").set_finish_point("big").set_finish_point("small")
    graph.add_conditional_edges("check", lambda s: s.value > 10, {True: "big", False: "small"})
    compiled = graph.compile()
    assert compiled.invoke({"value": 50}).log == ["big"]
    assert compiled.invoke({"value": 5}).log == ["small"]


def test_router_returning_a_list_fans_out_and_end_finishes() -> None:
    graph = StateGraph(Log).add_node("start", lambda s: None)
    graph.add_node("x", writer("x")).add_node("y", writer("y"))
    graph.set_entry_point("start").set_finish_point("x").set_finish_point("y")
    graph.add_conditional_edges("start", lambda s: ["x", "y"] if s.value else END)
    compiled = graph.compile()
    assert compiled.invoke({"value": 1}).log == ["x", "y"]
    assert compiled.invoke({"value": 0}).log == []


def test_router_returning_an_unknown_node_is_an_invalid_update() -> None:
    graph = StateGraph(Log).add_node("a", lambda s: None).set_entry_point("a")
    graph.add_conditional_edges("a", lambda s: "ghost")
    with pytest.raises(InvalidUpdateError, match="'ghost'"):
        graph.compile().invoke(None)


class MapState(TypedDict):
    items: list[int]
    squares: Annotated[list[int], topic]


def test_send_runs_a_node_once_per_argument_and_reduces() -> None:
    graph = StateGraph(MapState).add_node("plan", lambda s: None)
    graph.add_node("square", lambda n: {"squares": [n * n]})
    graph.set_entry_point("plan").set_finish_point("square")
    graph.add_conditional_edges("plan", lambda s: [Send("square", n) for n in s["items"]])
    result = graph.compile().invoke({"items": [1, 2, 3]})
    assert result == {"items": [1, 2, 3], "squares": [1, 4, 9]}


def test_command_from_a_node_updates_and_goes_to_the_named_node() -> None:
    def decide(state: Log) -> Command[Literal["yes", "no"]]:
        return Command(update={"value": 7}, goto="yes")

    graph = StateGraph(Log).add_node("decide", decide)
    graph.add_node("yes", writer("yes")).add_node("no", writer("no"))
    graph.set_entry_point("decide").set_finish_point("yes").set_finish_point("no")
    assert graph.compile().invoke(None) == Log(log=["yes"], value=7)


def test_command_goto_send_passes_the_argument() -> None:
    def fan(state: Log) -> Command:
        return Command(goto=[Send("echo", "p"), Send("echo", "q")])

    graph = StateGraph(Log).add_node("fan", fan).add_node("echo", lambda arg: {"log": [arg]})
    graph.set_entry_point("fan").set_finish_point("echo")
    assert graph.compile().invoke(None).log == ["p", "q"]


def test_custom_reducer_combines_updates() -> None:
    @dataclass
    class Total:
        total: Annotated[int, operator.add] = 0

    graph = StateGraph(Total)
    for name in ("a", "b"):
        graph.add_node(name, lambda s: {"total": 5}).add_edge(START, name).add_edge(name, END)
    assert graph.compile().invoke({"total": 1}).total == 11


def test_merge_reducer_unions_dicts_with_update_keys_winning() -> None:
    class Bag(TypedDict):
        bag: Annotated[dict[str, int], merge]

    graph = StateGraph(Bag).add_node("a", lambda s: {"bag": {"x": 2, "y": 3}})
    graph.set_entry_point("a").set_finish_point("a")
    assert graph.compile().invoke({"bag": {"x": 1, "z": 0}}) == {"bag": {"x": 2, "y": 3, "z": 0}}


class Doc(BaseModel):
    words: Annotated[list[str], topic] = []
    title: str = ""


def test_pydantic_schema_nodes_receive_and_invoke_returns_model_instances() -> None:
    seen: list[Any] = []

    def node(state: Doc) -> dict:
        seen.append(state)
        return {"words": ["hi"], "title": state.title.upper()}

    graph = StateGraph(Doc).add_node("a", node).set_entry_point("a").set_finish_point("a")
    result = graph.compile().invoke(Doc(title="t"))
    assert isinstance(seen[0], Doc)
    assert result == Doc(words=["hi"], title="T")


def test_typeddict_schema_nodes_receive_dicts() -> None:
    class D(TypedDict):
        n: int

    graph = StateGraph(D).add_node("a", lambda s: {"n": s["n"] + 1})
    assert graph.set_entry_point("a").set_finish_point("a").compile().invoke({"n": 1}) == {"n": 2}


def test_stream_updates_yields_each_superstep_writes() -> None:
    chunks = list(linear("a", "b").compile().stream(None))
    assert chunks == [{"a": {"log": ["a"]}}, {"b": {"log": ["b"]}}]


def test_stream_values_yields_the_input_state_then_each_step_state() -> None:
    chunks = list(linear("a", "b").compile().stream(None, stream_mode="values"))
    assert [c.log for c in chunks] == [[], ["a"], ["a", "b"]]


def test_recursion_limit_stops_a_loop_and_the_thread_resumes_with_a_higher_limit(
    saver, config
) -> None:
    graph = StateGraph(Log).add_node("tick", lambda s: {"value": s.value + 1})
    graph.set_entry_point("tick")
    graph.add_conditional_edges("tick", lambda s: END if s.value >= 5 else "tick")
    compiled = graph.compile(checkpointer=saver)
    with pytest.raises(GraphRecursionError, match="recursion_limit=3"):
        compiled.invoke(None, config, recursion_limit=3)
    assert compiled.get_state(config).values.value == 3
    assert compiled.invoke(None, config, recursion_limit=10).value == 5


def test_retry_policy_retries_a_failing_node_in_place() -> None:
    attempts = []

    def flaky(state: Log) -> dict:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return {"value": len(attempts)}

    policy = RetryPolicy(max_attempts=3, initial_interval=0.0, jitter=False)
    graph = StateGraph(Log).add_node("flaky", flaky, retry=policy)
    graph.set_entry_point("flaky").set_finish_point("flaky")
    assert graph.compile().invoke(None).value == 3


def test_retry_policy_does_not_retry_errors_outside_retry_on() -> None:
    attempts = []

    def broken(state: Log) -> dict:
        attempts.append(1)
        raise KeyError("bug")

    policy = RetryPolicy(max_attempts=5, retry_on=ConnectionError)
    graph = StateGraph(Log).add_node("broken", broken, retry=policy)
    with pytest.raises(KeyError):
        graph.set_entry_point("broken").set_finish_point("broken").compile().invoke(None)
    assert len(attempts) == 1


def test_retry_policy_waits_as_langgraphs_does() -> None:
    policy = RetryPolicy(initial_interval=0.5, backoff_factor=3.0, max_interval=4.0,
                         jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.0, 4.0]
    jittered = RetryPolicy(initial_interval=0.5)
    assert all(0.5 <= jittered.delay(1) < 1.5 for _ in range(50))
    assert RetryPolicy(backoff=0.25).delay(3) == 1.0  # Stepwise's earlier keyword: no jitter
    with pytest.raises(TypeError, match="retry_on must be"):
        RetryPolicy(retry_on="ValueError")


def test_the_first_policy_whose_retry_on_takes_the_error_decides() -> None:
    attempts = []

    def disk(state: Log) -> dict:
        attempts.append(1)
        if len(attempts) < 4:
            raise TimeoutError("busy")
        return {"value": len(attempts)}

    fast = {"initial_interval": 0.0, "jitter": False}
    policies = [RetryPolicy(retry_on=KeyError, max_attempts=9, **fast),
                RetryPolicy(retry_on=(TimeoutError,), max_attempts=4, **fast),
                RetryPolicy(retry_on=OSError, max_attempts=1, **fast)]
    graph = StateGraph(Log).add_node("disk", disk, retry_policy=policies)
    assert graph.set_entry_point("disk").set_finish_point("disk").compile().invoke(None).value == 4
    with pytest.raises(Exception, match="retry_policy must be a RetryPolicy"):
        StateGraph(Log).add_node("disk", disk, retry_policy=3).set_entry_point("disk").compile()


async def test_ainvoke_runs_async_and_sync_nodes_concurrently() -> None:
    both_started = asyncio.Event()
    started = []

    async def a(state: Log) -> dict:
        started.append("a")
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 5)
        return {"log": ["a"]}

    async def b(state: Log) -> dict:
        started.append("b")
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 5)
        return {"log": ["b"]}

    graph = StateGraph(Log).add_node("a", a).add_node("b", b).add_node("c", writer("c"))
    graph.add_edge(START, "a").add_edge(START, "b").add_edge(["a", "b"], "c").set_finish_point("c")
    assert (await graph.compile().ainvoke(None)).log == ["a", "b", "c"]


async def test_astream_yields_the_same_chunks_as_stream(saver) -> None:
    compiled = linear("a", "b").compile(checkpointer=saver)
    sync_chunks = list(compiled.stream(None, CheckpointConfig("s")))
    async_chunks = [c async for c in compiled.astream(None, CheckpointConfig("as"))]
    assert async_chunks == sync_chunks


def test_async_node_works_in_sync_invoke() -> None:
    async def a(state: Log) -> dict:
        await asyncio.sleep(0)
        return {"log": ["a"]}

    graph = StateGraph(Log).add_node("a", a).set_entry_point("a").set_finish_point("a")
    assert graph.compile().invoke(None).log == ["a"]


def test_with_checkpoint_saver_returns_a_new_graph_and_leaves_the_original_unbound() -> None:
    compiled = linear("a").compile()
    saver = InMemoryCheckpointSaver()
    bound = compiled.with_checkpoint_saver(saver)
    assert bound is not compiled
    assert compiled.saver is None and bound.saver is saver


def test_extra_is_merged_into_the_metadata_of_every_checkpoint_the_call_writes(
    saver, config
) -> None:
    linear("a", "b").compile(checkpointer=saver).invoke(None, config, extra={"user": "alice"})
    assert [t.metadata.extra for t in saver.list(config)] == [{"user": "alice"}] * 3
