"""Failures: a node that raises, saved sibling writes, deterministic task ids, bad values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

from orchestration import END, START, SerializationError, StateGraph
from orchestration.checkpoint import InMemoryCheckpointSaver
from orchestration.pregel.plan import plan_tasks
from orchestration.reducers import topic


@dataclass
class Log:
    log: Annotated[list[str], topic] = field(default_factory=list)
    blob: Any = None


class Switch:
    """A node that fails until switched on, counting its calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.on = False
        self.calls = 0

    def __call__(self, state: Log) -> dict:
        self.calls += 1
        if not self.on:
            raise RuntimeError(f"{self.name} is down")
        return {"log": [self.name]}


def fan_graph(saver: Any, good: Any, bad: Any) -> Any:
    graph = StateGraph(Log).add_node("good", good).add_node("bad", bad)
    graph.add_node("after", lambda s: {"log": ["after"]})
    graph.add_edge(START, "good").add_edge(START, "bad").add_edge(["good", "bad"], "after")
    return graph.set_finish_point("after").compile(checkpointer=saver)


def test_a_failing_node_raises_its_own_exception_noted_with_node_and_step(saver, config) -> None:
    # Third round (LangGraph's behaviour): the node's exception itself, no NodeError wrapper.
    good, bad = Switch("good"), Switch("bad")
    good.on = True
    compiled = fan_graph(saver, good, bad)
    with pytest.raises(RuntimeError, match="bad is down") as caught:
        compiled.invoke(None, config)
    assert type(caught.value) is RuntimeError
    note = " ".join(caught.value.__notes__)
    assert "'bad'" in note and "step 1" in note and repr(config.thread_id) in note
    assert saver.get_tuple(config).checkpoint.id in note


def test_a_failed_superstep_is_not_committed(saver, config) -> None:
    good = Switch("good")
    good.on = True
    compiled = fan_graph(saver, good, Switch("bad"))
    with pytest.raises(RuntimeError):
        compiled.invoke(None, config)
    latest = saver.get_tuple(config)
    assert latest.metadata.source == "input"
    assert latest.checkpoint.values["log"] == []


def test_finished_siblings_writes_are_saved_as_pending_writes(saver, config) -> None:
    good = Switch("good")
    good.on = True
    compiled = fan_graph(saver, good, Switch("bad"))
    with pytest.raises(RuntimeError):
        compiled.invoke(None, config)
    latest = saver.get_tuple(config)
    good_task = next(t for t in plan_tasks(latest.checkpoint) if t.node == "good")
    writes = [(w.channel, w.value) for w in latest.pending_writes if w.task_id == good_task.id]
    assert ("log", ["good"]) in writes


def test_resume_after_a_failure_reruns_only_the_failed_task(saver, config) -> None:
    good, bad = Switch("good"), Switch("bad")
    good.on = True
    compiled = fan_graph(saver, good, bad)
    with pytest.raises(RuntimeError):
        compiled.invoke(None, config)
    bad.on = True
    assert compiled.invoke(None, config).log == ["bad", "good", "after"]  # by node name
    assert (good.calls, bad.calls) == (1, 2)


def test_task_ids_are_deterministic_per_checkpoint_and_task(saver, config) -> None:
    compiled = fan_graph(saver, Switch("good"), Switch("bad"))
    with pytest.raises(RuntimeError):
        compiled.invoke(None, config)
    checkpoint = saver.get_tuple(config).checkpoint
    first = [t.id for t in plan_tasks(checkpoint)]
    assert first == [t.id for t in plan_tasks(saver.get_tuple(config).checkpoint)]
    assert len(set(first)) == 2


async def test_async_failure_and_resume(saver, config) -> None:
    good, bad = Switch("good"), Switch("bad")
    good.on = True
    compiled = fan_graph(saver, good, bad)
    with pytest.raises(RuntimeError):
        await compiled.ainvoke(None, config)
    bad.on = True
    assert (await compiled.ainvoke(None, config)).log == ["bad", "good", "after"]  # by node name
    assert good.calls == 1


def test_a_failing_router_raises_its_own_exception_noted_with_its_source(saver, config) -> None:
    def router(state: Log) -> str:
        raise ValueError("cannot decide")

    graph = StateGraph(Log).add_node("a", lambda s: {"log": ["a"]}).set_entry_point("a")
    graph.add_conditional_edges("a", router)
    with pytest.raises(ValueError, match="cannot decide") as caught:
        graph.compile(checkpointer=saver).invoke(None, config)
    assert type(caught.value) is ValueError
    assert any("after node 'a' in step 1" in note for note in caught.value.__notes__)


class Opaque:
    """Not a type the serializer allows."""


def test_unserializable_value_names_field_and_node_and_writes_nothing(saver, config) -> None:
    graph = StateGraph(Log).add_node("ok", lambda s: {"log": ["ok"]})
    graph.add_node("leaky", lambda s: {"blob": Opaque()})
    graph.set_entry_point("ok").add_edge("ok", "leaky").add_edge("leaky", END)
    compiled = graph.compile(checkpointer=saver)
    with pytest.raises(SerializationError) as caught:
        compiled.invoke(None, config)
    message = str(caught.value)
    assert "'blob'" in message and "['leaky']" in message and "step 2" in message
    latest = saver.get_tuple(config)
    assert latest.metadata.step == 1 and latest.checkpoint.next == ("leaky",)


def test_thread_is_resumable_after_a_serialization_error(saver, config) -> None:
    values = [Opaque(), "fine"]
    graph = StateGraph(Log).add_node("leaky", lambda s: {"blob": values.pop(0)})
    compiled = graph.set_entry_point("leaky").set_finish_point("leaky").compile(checkpointer=saver)
    with pytest.raises(SerializationError):
        compiled.invoke(None, config)
    assert compiled.invoke(None, config).blob == "fine"


def test_unserializable_interrupt_value_names_the_node(saver, config) -> None:
    from orchestration import interrupt

    graph = StateGraph(Log).add_node("ask", lambda s: {"log": [interrupt(Opaque())]})
    compiled = graph.set_entry_point("ask").set_finish_point("ask").compile(checkpointer=saver)
    with pytest.raises(SerializationError, match="node 'ask'"):
        compiled.invoke(None, config)
    assert saver.get_tuple(config).metadata.source == "input"


def test_serialization_error_carries_field_node_and_step(saver, config) -> None:
    graph = StateGraph(Log).add_node("ok", lambda s: {"log": ["ok"]})
    graph.add_node("leaky", lambda s: {"blob": Opaque()})
    graph.set_entry_point("ok").add_edge("ok", "leaky").add_edge("leaky", END)
    with pytest.raises(SerializationError) as caught:
        graph.compile(checkpointer=saver).invoke(None, config)
    error = caught.value
    assert (error.field, error.node, error.nodes, error.step) == ("blob", "leaky", ("leaky",), 2)


def test_the_culprit_is_the_unstorable_field_not_another_field_named_in_the_message(
    saver, config
) -> None:
    """`blob`'s bad value sits under a key named like another field written in that step: the
    error still names `blob` and its writer (the message names both fields)."""
    graph = StateGraph(Log).add_node("fine", lambda s: {"log": ["fine"]})
    graph.add_node("leaky", lambda s: {"blob": {"log": Opaque()}})
    graph.add_edge(START, "fine").add_edge(START, "leaky")
    compiled = graph.add_edge("fine", END).add_edge("leaky", END).compile(checkpointer=saver)
    with pytest.raises(SerializationError) as caught:
        compiled.invoke(None, config)
    assert (caught.value.field, caught.value.nodes) == ("blob", ("leaky",))
    assert "field 'blob' was written by ['leaky']" in str(caught.value)


def test_an_unstorable_pending_write_names_its_field_and_node(saver, config) -> None:
    from orchestration import interrupt

    graph = StateGraph(Log).add_node("leaky", lambda s: {"blob": Opaque()})
    graph.add_node("ask", lambda s: {"log": [interrupt("?")]})
    graph.add_edge(START, "leaky").add_edge(START, "ask")
    compiled = graph.add_edge("leaky", END).add_edge("ask", END).compile(checkpointer=saver)
    with pytest.raises(SerializationError, match="in its update, node 'leaky'") as caught:
        compiled.invoke(None, config)
    assert (caught.value.field, caught.value.node, caught.value.step) == ("blob", "leaky", 1)


def test_an_unstorable_interrupt_value_has_a_node_but_no_field(saver, config) -> None:
    from orchestration import interrupt

    graph = StateGraph(Log).add_node("ask", lambda s: {"log": [interrupt(Opaque())]})
    compiled = graph.set_entry_point("ask").set_finish_point("ask").compile(checkpointer=saver)
    with pytest.raises(SerializationError) as caught:
        compiled.invoke(None, config)
    assert (caught.value.field, caught.value.node) == (None, "ask")


def leaky_and_failing(saver: Any, bad: Switch, blobs: list[Any]) -> Any:
    """`leaky` finishes with a value popped from `blobs` while its sibling `bad` may fail."""
    graph = StateGraph(Log).add_node("leaky", lambda s: {"blob": blobs.pop(0)})
    graph.add_node("bad", bad).add_node("after", lambda s: {"log": ["after"]})
    graph.add_edge(START, "leaky").add_edge(START, "bad").add_edge(["leaky", "bad"], "after")
    return graph.set_finish_point("after").compile(checkpointer=saver)


def test_node_failure_wins_over_a_siblings_unsaveable_writes(saver, config) -> None:
    compiled = leaky_and_failing(saver, Switch("bad"), [Opaque()])
    with pytest.raises(RuntimeError, match="bad is down") as caught:
        compiled.invoke(None, config)
    assert any("'bad'" in note for note in caught.value.__notes__)
    assert isinstance(caught.value.__context__, SerializationError)
    assert any("'leaky'" in note for note in caught.value.__notes__)


def test_unsaveable_sibling_writes_leave_the_thread_resumable(saver, config) -> None:
    bad, blobs = Switch("bad"), [Opaque(), "fine"]
    compiled = leaky_and_failing(saver, bad, blobs)
    with pytest.raises(RuntimeError):
        compiled.invoke(None, config)
    latest = saver.get_tuple(config)
    # nothing of the siblings is kept: only the record of how `bad` failed
    assert latest.metadata.source == "input"
    assert [w.channel for w in latest.pending_writes] == ["__error__"]
    bad.on = True
    assert compiled.invoke(None, config) == Log(log=["bad", "after"], blob="fine")


def test_the_state_after_a_failure_shows_each_tasks_result_or_error(saver, config) -> None:
    good, bad = Switch("good"), Switch("bad")
    good.on = True
    compiled = fan_graph(saver, good, bad)
    with pytest.raises(RuntimeError):
        compiled.invoke(None, config)
    tasks = {t.name: t for t in compiled.get_state(config).tasks}
    assert tasks["good"].result == {"log": ["good"]} and tasks["good"].error is None
    assert tasks["bad"].error == "RuntimeError('bad is down')" and tasks["bad"].result is None
    assert tasks["bad"].path == ("__pregel_pull", "bad")
    # the history's record of that checkpoint says the same
    record = compiled.get_state_history(config)[0]
    assert {t.name: t.error for t in record.tasks} == {"bad": "RuntimeError('bad is down')",
                                                        "good": None}
    bad.on = True
    compiled.invoke(None, config)  # the record of the failure does not stop the re-run
    assert compiled.get_state(config).tasks == ()


class WritesRefused(InMemoryCheckpointSaver):
    """The database went away with the node: the failure's record cannot be written."""

    def put_writes(self, config: Any, writes: Any, task_id: str) -> None:
        raise ConnectionError("database is gone")


def test_a_failure_whose_record_cannot_be_saved_still_raises_the_nodes_error(config) -> None:
    bad = Switch("bad")
    compiled = StateGraph(Log).add_node("bad", bad).set_entry_point("bad").compile(
        checkpointer=WritesRefused()
    )
    with pytest.raises(RuntimeError, match="bad is down") as caught:
        compiled.invoke(None, config)
    assert any("record of this failure was not saved" in n for n in caught.value.__notes__)


def test_a_resumed_node_that_fails_keeps_its_answer(saver, config) -> None:
    """The failure's record replaces the task's pending writes: it must carry the question
    and the answer along, or the resume after the fix would ask again."""
    from orchestration import Command, interrupt

    broken = {"on": True}
    asked: list[str] = []

    def ask(state: Log) -> dict:
        answer = interrupt("ship it?")
        asked.append(answer)
        if broken["on"]:
            raise RuntimeError("shipping is down")
        return {"log": [f"shipped: {answer}"]}

    compiled = StateGraph(Log).add_node("ask", ask).set_entry_point("ask").compile(
        checkpointer=saver
    )
    compiled.invoke(None, config)
    with pytest.raises(RuntimeError, match="shipping is down"):
        compiled.invoke(Command(resume="yes"), config)
    state = compiled.get_state(config)
    assert state.interrupts == ()  # answered, not waiting again
    assert state.tasks[0].error == "RuntimeError('shipping is down')"
    broken["on"] = False
    assert compiled.invoke(None, config).log == ["shipped: yes"]
    assert asked == ["yes", "yes"]  # the stored answer, not a new question
