"""`task_key()`: one idempotency key per task of a thread's history, the same for every
execution of that task (resume, crash retry, a fork replaying it), different for other tasks;
and `add_node(..., side_effects=True)` recorded on the compiled graph."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

from orchestration import END, Command, Send, StateGraph, interrupt, task_key
from orchestration.checkpoint import BaseCheckpointSaver, CheckpointConfig


@dataclass
class S:
    keys: Annotated[list[str], operator.add] = field(default_factory=list)
    n: int = 0


def keyed(name: str) -> Any:
    def node(state: S) -> dict[str, Any]:
        return {"keys": [f"{name}:{task_key()}"]}

    return node


def review(state: S) -> dict[str, Any]:
    before = task_key()
    interrupt("ok?")
    return {"keys": [f"review:{before}", f"review-after-answer:{task_key()}"]}


def build() -> Any:
    g = StateGraph(S)
    g.add_node("prepare", keyed("prepare"))
    g.add_node("review", review)
    g.add_node("pay", keyed("pay"), side_effects=True)
    g.set_entry_point("prepare").add_edge("prepare", "review").add_edge("review", "pay")
    g.add_edge("pay", END)
    return g.compile()


def keys_by_node(keys: list[str]) -> dict[str, str]:
    return dict(k.split(":", 1) for k in keys)


def test_side_effects_are_declared_per_node() -> None:
    graph = build()
    assert graph.spec.nodes["pay"].side_effects
    assert not graph.spec.nodes["prepare"].side_effects


def test_task_key_outside_a_node_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="inside a node"):
        task_key()


def test_a_resumed_task_keeps_its_key(saver: BaseCheckpointSaver, config: CheckpointConfig
                                      ) -> None:
    graph = build().with_checkpoint_saver(saver)
    graph.invoke(S(), config)
    state = graph.invoke(Command(resume="yes"), config)
    keys = keys_by_node(state.keys)
    assert keys["review"] == keys["review-after-answer"]
    assert len({keys["prepare"], keys["review"], keys["pay"]}) == 3


def test_a_fork_replaying_a_task_reuses_its_key(saver: BaseCheckpointSaver,
                                                config: CheckpointConfig) -> None:
    graph = build().with_checkpoint_saver(saver)
    graph.invoke(S(), config)
    original = keys_by_node(graph.invoke(Command(resume="yes"), config).keys)
    asked = next(s for s in graph.get_state_history(config) if s.next == ("review",))

    graph.invoke(None, asked.config)  # re-decide: branch from where the review was asked
    replay = keys_by_node(graph.invoke(Command(resume="no"), config).keys)
    assert replay["pay"] == original["pay"]
    assert replay["review"] == original["review"]


def test_other_tasks_get_other_keys(saver: BaseCheckpointSaver, config: CheckpointConfig
                                    ) -> None:
    def fan_out(state: S) -> list[Send]:
        return [Send("work", i) for i in range(3)]

    def work(arg: int) -> dict[str, Any]:
        return {"keys": [f"work{arg}:{task_key()}"]}

    def loop(state: S) -> dict[str, Any]:
        return {"keys": [f"loop{state.n}:{task_key()}"], "n": state.n + 1}

    g = StateGraph(S)
    g.add_node("loop", loop)
    g.add_node("work", work)
    g.set_entry_point("loop")
    g.add_conditional_edges("loop", lambda s: "loop" if s.n < 2 else fan_out(s))
    g.add_edge("work", END)
    graph = g.compile().with_checkpoint_saver(saver)
    keys = graph.invoke(S(), config).keys
    assert len(keys) == 5 and len({k.split(":")[1] for k in keys}) == 5

    other = graph.invoke(S(), CheckpointConfig(config.thread_id + "-other")).keys
    assert not {k.split(":")[1] for k in keys} & {k.split(":")[1] for k in other}


def test_a_branch_with_edited_values_replays_its_tasks_under_their_keys(
    saver: BaseCheckpointSaver, config: CheckpointConfig
) -> None:
    """A fork with values writes one checkpoint a step on without running anything: the
    tasks after it ran one step later and got new keys, so the demo paid a second time for an
    expense whose comment alone was edited (a reviewer trial), while the fork page promised
    the ledger would recognise the replay. Two edits of one checkpoint replay the same tasks
    too; a later iteration, another thread and a new run still get keys of their own."""
    graph = build().with_checkpoint_saver(saver)
    graph.invoke(S(), config)
    original = keys_by_node(graph.invoke(Command(resume="yes"), config).keys)
    asked = next(s for s in graph.get_state_history(config) if s.next == ("review",))

    for n in (5, 6):  # two different edits of the same past checkpoint
        edited = graph.update_state(asked.config, {"n": n})
        graph.invoke(None, edited)
        replay = keys_by_node(graph.invoke(Command(resume="yes"), config).keys)
        assert replay["review"] == original["review"] and replay["pay"] == original["pay"]

    # edits on top of edits, before the review and again before the payment
    first = graph.update_state(asked.config, {"n": 7})
    second = graph.update_state(first, {"n": 8})
    graph.invoke(None, second)
    paused = graph.get_state(config)
    graph.update_state(paused.config, {"n": 9})
    replay = keys_by_node(graph.invoke(Command(resume="yes"), config).keys)
    assert replay["pay"] == original["pay"]

    # a new run on the finished thread is new work
    graph.invoke(S(n=1), config)
    prepared = [k for k in graph.get_state(config).values.keys if k.startswith("prepare:")]
    assert prepared[-1] != f"prepare:{original['prepare']}"
