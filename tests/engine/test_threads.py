"""Threads: every row of the invoke table, forks, time travel and update_state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

from orchestration import (
    END,
    START,
    CheckpointNotFound,
    InvalidUpdateError,
    StateGraph,
    ThreadBusyError,
)
from orchestration.checkpoint import CheckpointConfig
from orchestration.reducers import topic
from orchestration.types import StateSnapshot


@dataclass
class Log:
    log: Annotated[list[str], topic] = field(default_factory=list)
    value: int = 0


def graph_ab(saver: Any, **kwargs: Any) -> Any:
    graph = StateGraph(Log)
    graph.add_node("a", lambda s: {"log": ["a"]}).add_node("b", lambda s: {"log": ["b"]})
    graph.set_entry_point("a").add_edge("a", "b").add_edge("b", END)
    return graph.compile(checkpointer=saver, **kwargs)


# -- no checkpoint -------------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, {}, Log()], ids=["none", "empty-dict", "default"])
def test_empty_input_on_a_new_thread_runs_from_the_start(saver, config, empty) -> None:
    assert graph_ab(saver).invoke(empty, config).log == ["a", "b"]


def test_input_on_a_new_thread_is_applied_before_the_first_node(saver, config) -> None:
    result = graph_ab(saver).invoke(Log(log=["seed"], value=4), config)
    assert result == Log(log=["seed", "a", "b"], value=4)
    assert saver.list(config)[0].metadata.writes == {START: {"log": ["seed"], "value": 4}}


# -- unfinished thread -----------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, {}, Log()], ids=["none", "empty-dict", "default"])
def test_empty_input_on_an_unfinished_thread_resumes_without_rerunning(
    saver, config, empty
) -> None:
    compiled = graph_ab(saver, interrupt_before=["b"])
    assert compiled.invoke(None, config).log == ["a"]
    assert compiled.get_state(config).next == ("b",)
    assert compiled.invoke(empty, config).log == ["a", "b"]


def test_new_input_on_an_unfinished_thread_is_refused_with_how_to_continue(saver, config) -> None:
    compiled = graph_ab(saver, interrupt_before=["b"])
    compiled.invoke(None, config)
    with pytest.raises(ThreadBusyError) as caught:
        compiled.invoke({"value": 1}, config)
    message = str(caught.value)
    assert "['b']" in message
    assert "invoke(None, config)" in message
    assert "Command(resume=" in message
    assert "with_checkpoint_id" in message


# -- finished thread -----------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, {}, Log()], ids=["none", "empty-dict", "default"])
def test_empty_input_on_a_finished_thread_returns_its_state_and_runs_nothing(
    saver, config, empty
) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    count = len(saver.list(config))
    assert compiled.invoke(empty, config).log == ["a", "b"]
    assert len(saver.list(config)) == count


def test_new_input_on_a_finished_thread_starts_a_new_run_from_its_state(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    result = compiled.invoke({"value": 9}, config)
    assert result == Log(log=["a", "b", "a", "b"], value=9)
    sources = [t.metadata.source for t in saver.list(config)]
    assert sources == ["input", "loop", "loop", "input", "loop", "loop"]


# -- forks ---------------------------------------------------------------------------------------


def test_fork_writes_a_copy_whose_parent_is_the_named_checkpoint(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    first = saver.list(config)[0]
    compiled.invoke(None, config.with_checkpoint_id(first.checkpoint.id))
    tuples = saver.list(config)
    fork = tuples[3]
    assert fork.metadata.source == "fork"
    assert fork.parent_config == first.config
    assert fork.checkpoint.values == first.checkpoint.values
    assert [t.metadata.source for t in tuples[4:]] == ["loop", "loop"]
    assert tuples[4].parent_config == fork.config


def test_fork_never_changes_earlier_checkpoints(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    before = [(t.checkpoint, t.metadata) for t in saver.list(config)]
    compiled.invoke({"value": 2}, config.with_checkpoint_id(saver.list(config)[1].checkpoint.id))
    after = [(t.checkpoint, t.metadata) for t in saver.list(config)][: len(before)]
    assert after == before


def test_new_input_at_a_checkpoint_runs_from_start_on_its_state(saver, config) -> None:
    """As LangGraph: the input is applied to the checkpoint's state and the run starts again
    from START; the task the checkpoint waited to run ("b") is dropped, not run beside it."""
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    middle = saver.list(config)[1]  # after "a", next == ("b",)
    result = compiled.invoke({"value": 5}, config.with_checkpoint_id(middle.checkpoint.id))
    assert result == Log(log=["a", "a", "b"], value=5)
    assert compiled.get_state(config).values == result
    started = next(s for s in compiled.get_state_history(config) if s.metadata.source == "input"
                   and s.parent_config is not None)
    assert started.parent_config == middle.config and started.next == ("a",)


def test_unknown_checkpoint_id_raises_checkpoint_not_found(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    with pytest.raises(CheckpointNotFound, match="get_state_history"):
        compiled.invoke(None, config.with_checkpoint_id("nope"))


def test_branch_head_becomes_the_threads_latest(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke({"value": 1}, config)
    first = saver.list(config)[0]
    compiled.invoke({"value": 2}, config.with_checkpoint_id(first.checkpoint.id))
    assert compiled.get_state(config).values.value == 2


# -- time travel ---------------------------------------------------------------------------------


def test_get_state_returns_a_snapshot_of_the_latest_checkpoint(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    snapshot = compiled.get_state(config)
    latest = saver.get_tuple(config)
    assert snapshot.values == Log(log=["a", "b"])
    assert snapshot.next == ()
    assert snapshot.config == latest.config
    assert snapshot.metadata == latest.metadata
    assert snapshot.created_at == latest.checkpoint.ts.isoformat()  # a string, as LangGraph's
    assert snapshot.parent_config == latest.parent_config
    assert snapshot.interrupts == ()


def test_get_state_of_a_past_checkpoint(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    first = saver.list(config)[0]
    snapshot = compiled.get_state(first.config)
    assert snapshot.values == Log() and snapshot.next == ("a",)


def test_get_state_history_is_newest_first_with_limit_and_before(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    history = compiled.get_state_history(config)
    assert [h.metadata.step for h in history] == [2, 1, 0]
    assert [h.metadata.step for h in compiled.get_state_history(config, limit=2)] == [2, 1]
    before = compiled.get_state_history(config, before=history[0].config)
    assert [h.metadata.step for h in before] == [1, 0]


def test_get_state_history_accepts_a_checkpoint_id_as_before(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    newest = compiled.get_state(config).config.checkpoint_id
    history = compiled.get_state_history(config, before=newest, limit=1)
    assert [h.metadata.step for h in history] == [1]


def test_get_state_history_filters_on_metadata(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config, extra={"user": "ann"})
    compiled.update_state(config, {"value": 1}, as_node="b", extra={"user": "bob"})
    by_bob = compiled.get_state_history(config, filter={"user": "bob"})
    loops = compiled.get_state_history(config, filter={"source": "loop"})
    assert [h.metadata.source for h in by_bob] == ["update"]
    assert [h.metadata.step for h in loops] == [2, 1]


async def test_async_history_matches_sync_history(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    loops = {"source": "loop"}
    sync = [h.config for h in compiled.get_state_history(config, limit=2, filter=loops)]
    async_ = await compiled.aget_state_history(config, limit=2, filter=loops)
    assert [h.config for h in async_] == sync


def test_update_state_applies_values_through_reducers_as_the_node(saver, config) -> None:
    compiled = graph_ab(saver, interrupt_before=["b"])
    compiled.invoke(None, config)
    new_config = compiled.update_state(config, {"log": ["edited"]}, as_node="a")
    snapshot = compiled.get_state(config)
    assert snapshot.config == new_config
    assert snapshot.values.log == ["a", "edited"]
    assert snapshot.metadata.source == "update"
    assert snapshot.next == ("b",)
    assert compiled.invoke(None, config).log == ["a", "edited", "b"]


def test_update_state_as_node_sets_next_from_that_nodes_edges(saver, config) -> None:
    compiled = graph_ab(saver, interrupt_before=["b"])
    compiled.invoke(None, config)
    compiled.update_state(config, {"value": 3}, as_node="b")
    assert compiled.get_state(config).next == ()
    assert compiled.invoke(None, config) == Log(log=["a"], value=3)


def test_update_state_without_as_node_uses_the_node_that_wrote_the_checkpoint(
    saver, config
) -> None:
    compiled = graph_ab(saver, interrupt_before=["b"])
    compiled.invoke(None, config)
    compiled.update_state(config, {"value": 1})
    snapshot = compiled.get_state(config)
    assert snapshot.metadata.writes == {"a": {"value": 1}}
    assert snapshot.next == ("b",)


def test_update_state_without_as_node_is_refused_when_several_nodes_wrote(saver, config) -> None:
    graph = StateGraph(Log)
    graph.add_node("a", lambda s: {"log": ["a"]}).add_node("b", lambda s: {"log": ["b"]})
    graph.add_edge(START, "a").add_edge(START, "b").set_finish_point("a").set_finish_point("b")
    compiled = graph.compile(checkpointer=saver)
    compiled.invoke(None, config)
    with pytest.raises(InvalidUpdateError, match="as_node"):
        compiled.update_state(config, {"value": 1})


def test_update_state_on_a_past_checkpoint_branches_from_it(saver, config) -> None:
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    first, middle, last = saver.list(config)
    branch = compiled.update_state(middle.config, {"value": 8}, as_node="a")
    updated = saver.get_tuple(branch)
    assert updated.parent_config == middle.config
    assert compiled.invoke(None, config) == Log(log=["a", "b"], value=8)
    assert saver.get_tuple(last.config).checkpoint == last.checkpoint


def test_update_state_records_extra_in_metadata(saver, config) -> None:
    compiled = graph_ab(saver, interrupt_before=["b"])
    compiled.invoke(None, config)
    cfg = compiled.update_state(config, {"value": 1}, as_node="a", extra={"reason": "typo"})
    assert saver.get_tuple(cfg).metadata.extra == {"reason": "typo"}


async def test_async_time_travel_matches_sync(saver, config) -> None:
    compiled = graph_ab(saver, interrupt_before=["b"])
    await compiled.ainvoke(None, config)
    cfg = await compiled.aupdate_state(config, {"value": 2}, as_node="a")
    assert (await compiled.aget_state(config)).config == cfg
    history = await compiled.aget_state_history(config)
    assert [h.metadata.source for h in history] == ["update", "loop", "input"]
    assert (await compiled.ainvoke(None, config)).value == 2


def test_thread_id_is_required_when_a_saver_is_bound(saver) -> None:
    with pytest.raises(ValueError, match="CheckpointConfig"):
        graph_ab(saver).invoke(None)


def test_threads_are_independent(saver) -> None:
    compiled = graph_ab(saver)
    compiled.invoke({"value": 1}, CheckpointConfig("one"))
    compiled.invoke({"value": 2}, CheckpointConfig("two"))
    assert compiled.get_state(CheckpointConfig("one")).values.value == 1



def test_history_snapshots_are_frozen_state_snapshots_equal_to_get_state(saver, config) -> None:
    """History builds its snapshots without StateSnapshot's constructor (hundreds at a time):
    they are frozen StateSnapshots (records, whose tasks are built when read), equal to what
    get_state and the constructor give, and each owns its values."""
    compiled = graph_ab(saver)
    compiled.invoke(None, config)
    history = compiled.get_state_history(config)
    latest = compiled.get_state(config)
    assert all(isinstance(s, StateSnapshot) for s in history)
    assert history[0] == latest
    assert history[0] == StateSnapshot(
        latest.values, latest.next, latest.config, latest.metadata, latest.created_at,
        latest.parent_config, latest.interrupts, latest.tasks,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        history[0].values = Log()  # type: ignore[misc]
    history[0].values.log.append("changed by the caller")
    assert compiled.get_state(config).values.log == ["a", "b"]
    assert compiled.get_state_history(config)[0].values.log == ["a", "b"]
