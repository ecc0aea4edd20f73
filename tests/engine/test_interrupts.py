"""Human in the loop: static breakpoints and dynamic interrupt() with Command(resume=)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

from orchestration import (
    END,
    START,
    Command,
    Interrupt,
    InvalidUpdateError,
    StateGraph,
    interrupt,
)
from orchestration.reducers import topic


@dataclass
class Log:
    log: Annotated[list[str], topic] = field(default_factory=list)
    value: int = 0


def ask(question: str, calls: list[str] | None = None):  # noqa: ANN201 - a node factory
    def node(state: Any) -> dict:
        if calls is not None:
            calls.append(question)
        return {"log": [f"{question}={interrupt(question)}"]}

    return node


def review_graph(saver: Any, calls: list[str] | None = None) -> Any:
    graph = StateGraph(Log).add_node("draft", lambda s: {"log": ["draft"]})
    graph.add_node("review", ask("ok?", calls)).add_node("publish", lambda s: {"log": ["publish"]})
    graph.set_entry_point("draft").add_edge("draft", "review").add_edge("review", "publish")
    return graph.add_edge("publish", END).compile(checkpointer=saver)


def test_interrupt_pauses_the_run_and_invoke_returns_the_state_so_far(saver, config) -> None:
    compiled = review_graph(saver)
    assert compiled.invoke(None, config).log == ["draft"]
    snapshot = compiled.get_state(config)
    assert snapshot.next == ("review",)
    [pending] = snapshot.interrupts
    assert isinstance(pending, Interrupt)
    assert (pending.value, pending.node) == ("ok?", "review")


def test_resume_reruns_the_node_and_interrupt_returns_the_answer(saver, config) -> None:
    calls: list[str] = []
    compiled = review_graph(saver, calls)
    compiled.invoke(None, config)
    result = compiled.invoke(Command(resume="yes"), config)
    assert result.log == ["draft", "ok?=yes", "publish"]
    assert calls == ["ok?", "ok?"]
    assert compiled.get_state(config).interrupts == ()


def test_resume_does_not_rerun_completed_supersteps(saver, config) -> None:
    drafts: list[int] = []
    graph = StateGraph(Log).add_node("draft", lambda s: drafts.append(1))
    graph.add_node("review", ask("q")).set_entry_point("draft").add_edge("draft", "review")
    compiled = graph.set_finish_point("review").compile(checkpointer=saver)
    compiled.invoke(None, config)
    compiled.invoke(Command(resume="a"), config)
    assert drafts == [1]


def test_interrupt_ids_are_stable_for_the_same_checkpoint(saver, config) -> None:
    compiled = review_graph(saver)
    compiled.invoke(None, config)
    first = compiled.get_state(config).interrupts[0].id
    compiled.invoke(None, config)  # resuming without an answer asks the same question
    assert compiled.get_state(config).interrupts[0].id == first


def test_several_interrupts_in_one_node_are_answered_in_order(saver, config) -> None:
    calls = []

    def two_questions(state: Log) -> dict:
        calls.append(1)
        first = interrupt("first?")
        second = interrupt("second?")
        return {"log": [first, second]}

    graph = StateGraph(Log).add_node("q", two_questions).set_entry_point("q")
    compiled = graph.set_finish_point("q").compile(checkpointer=saver)
    compiled.invoke(None, config)
    assert compiled.get_state(config).interrupts[0].value == "first?"
    compiled.invoke(Command(resume="one"), config)
    assert compiled.get_state(config).interrupts[0].value == "second?"
    assert compiled.invoke(Command(resume="two"), config).log == ["one", "two"]
    assert len(calls) == 3


def test_the_latest_state_lists_what_waits_and_a_record_what_its_step_raised(
    saver, config
) -> None:
    compiled = parallel_questions(saver)
    compiled.invoke(None, config)
    pending = {i.node: i.id for i in compiled.get_state(config).interrupts}
    compiled.invoke(Command(resume={pending["left"]: "L"}), config)
    latest = compiled.get_state(config)
    assert [i.node for i in latest.interrupts] == ["right"]  # still waiting
    record = compiled.get_state(latest.config)  # the same checkpoint, asked for by id
    assert [i.node for i in record.interrupts] == ["left", "right"]  # raised there
    compiled.invoke(Command(resume={pending["right"]: "R"}), config)
    finished, paused = compiled.get_state_history(config)[:2]
    assert finished.interrupts == ()
    assert [i.id for i in paused.interrupts] == [pending["left"], pending["right"]]
    assert compiled.get_state(config).interrupts == ()


def parallel_questions(saver: Any) -> Any:
    graph = StateGraph(Log)
    for name in ("left", "right"):
        graph.add_node(name, ask(name)).add_edge(START, name).add_edge(name, END)
    return graph.compile(checkpointer=saver)


def test_parallel_interrupts_are_answered_by_id(saver, config) -> None:
    compiled = parallel_questions(saver)
    compiled.invoke(None, config)
    pending = {i.node: i.id for i in compiled.get_state(config).interrupts}
    assert set(pending) == {"left", "right"}
    result = compiled.invoke(Command(resume={pending["left"]: "L", pending["right"]: "R"}), config)
    assert result.log == ["left=L", "right=R"]


def test_partial_answer_reruns_only_answered_tasks_and_others_stay_interrupted(
    saver, config
) -> None:
    compiled = parallel_questions(saver)
    compiled.invoke(None, config)
    pending = {i.node: i.id for i in compiled.get_state(config).interrupts}
    # LangGraph 1.x's live view: the answered task's write shows, only `right` is left
    assert compiled.invoke(Command(resume={pending["left"]: "L"}), config).log == ["left=L"]
    snapshot = compiled.get_state(config)
    assert [(i.node, i.id) for i in snapshot.interrupts] == [("right", pending["right"])]
    assert (snapshot.values.log, snapshot.next) == (["left=L"], ("right",))
    # the checkpoint itself, asked for by id, is the record: nothing of the step committed
    record = compiled.get_state(snapshot.config)
    assert (record.values.log, record.next) == ([], ("left", "right"))
    result = compiled.invoke(Command(resume={pending["right"]: "R"}), config)
    assert result.log == ["left=L", "right=R"]


def test_a_plain_answer_with_several_pending_interrupts_is_refused(saver, config) -> None:
    compiled = parallel_questions(saver)
    compiled.invoke(None, config)
    with pytest.raises(InvalidUpdateError, match="answer them by id"):
        compiled.invoke(Command(resume="both?"), config)


def test_dict_answer_to_a_single_interrupt_is_the_answer_itself(saver, config) -> None:
    compiled = review_graph(saver)
    compiled.invoke(None, config)
    result = compiled.invoke(Command(resume={"action": "approve"}), config)
    assert result.log[1] == "ok?={'action': 'approve'}"


def test_resume_of_a_finished_thread_is_refused_saying_to_start_a_new_run(saver, config) -> None:
    compiled = review_graph(saver)
    compiled.invoke(None, config)
    compiled.invoke(Command(resume="yes"), config)
    with pytest.raises(InvalidUpdateError, match=r"has finished.*invoke\(input, config\)"):
        compiled.invoke(Command(resume="again"), config)


def test_resume_at_a_breakpoint_continues_as_langgraph_does(saver, config) -> None:
    # LangGraph runs the node the breakpoint held; the answer waits for an interrupt() there
    asked: list[str] = []

    def a(s: Log) -> dict[str, list[str]]:
        asked.append(interrupt("go?"))
        return {"log": ["a"]}

    graph = StateGraph(Log).add_node("a", a).set_entry_point("a")
    compiled = graph.set_finish_point("a").compile(checkpointer=saver, interrupt_before=["a"])
    compiled.invoke(None, config)
    assert compiled.invoke(Command(resume="go"), config).log == ["a"]
    assert asked == ["go"]
    with pytest.raises(InvalidUpdateError, match=r"has finished"):
        compiled.invoke(Command(resume="again"), config)


def test_interrupts_and_answers_are_stored_as_pending_writes(saver, config) -> None:
    compiled = parallel_questions(saver)
    compiled.invoke(None, config)
    left = next(i for i in compiled.get_state(config).interrupts if i.node == "left")
    compiled.invoke(Command(resume={left.id: "L"}), config)
    channels = {w.channel for w in saver.get_tuple(config).pending_writes}
    assert {"__interrupt__", "__done__"} <= channels


def test_replaying_from_before_an_answered_interrupt_asks_again(saver, config) -> None:
    compiled = review_graph(saver)
    compiled.invoke(None, config)
    paused_at = compiled.get_state(config).config
    compiled.invoke(Command(resume="yes"), config)
    assert compiled.invoke(None, paused_at).log == ["draft"]
    snapshot = compiled.get_state(config)
    assert snapshot.metadata.source == "fork"
    assert [i.value for i in snapshot.interrupts] == ["ok?"]
    assert compiled.invoke(Command(resume="no"), config).log == ["draft", "ok?=no", "publish"]


def test_resuming_a_past_interrupted_checkpoint_answers_it_on_a_branch(saver, config) -> None:
    compiled = review_graph(saver)
    compiled.invoke(None, config)
    paused = compiled.get_state(config)
    compiled.invoke(Command(resume="yes"), config)
    original_writes = saver.get_tuple(paused.config).pending_writes
    result = compiled.invoke(
        Command(resume={paused.interrupts[0].id: "maybe"}), paused.config
    )
    assert result.log == ["draft", "ok?=maybe", "publish"]
    assert saver.get_tuple(paused.config).pending_writes == original_writes


def test_interrupt_before_stops_before_the_node_and_resume_runs_it(saver, config) -> None:
    graph = StateGraph(Log).add_node("a", lambda s: {"log": ["a"]})
    graph.add_node("b", lambda s: {"log": ["b"]}).set_entry_point("a").add_edge("a", "b")
    compiled = graph.set_finish_point("b").compile(checkpointer=saver, interrupt_before=["b"])
    assert compiled.invoke(None, config).log == ["a"]
    assert compiled.get_state(config).next == ("b",)
    assert compiled.invoke(None, config).log == ["a", "b"]


def test_interrupt_after_stops_after_the_node(saver, config) -> None:
    graph = StateGraph(Log).add_node("a", lambda s: {"log": ["a"]})
    graph.add_node("b", lambda s: {"log": ["b"]}).set_entry_point("a").add_edge("a", "b")
    compiled = graph.set_finish_point("b").compile(checkpointer=saver, interrupt_after=["a"])
    assert compiled.invoke(None, config).log == ["a"]
    assert compiled.get_state(config).next == ("b",)
    assert compiled.invoke(None, config).log == ["a", "b"]


def test_interrupt_outside_a_node_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="inside a node"):
        interrupt("hello")


def test_stream_updates_reports_the_interrupt(saver, config) -> None:
    chunks = list(review_graph(saver).stream(None, config))
    assert chunks[0] == {"draft": {"log": ["draft"]}}
    assert [i.value for i in chunks[1]["__interrupt__"]] == ["ok?"]


async def test_async_interrupt_and_resume(saver, config) -> None:
    async def review(state: Log) -> dict:
        return {"log": [interrupt("async?")]}

    graph = StateGraph(Log).add_node("review", review).set_entry_point("review")
    compiled = graph.set_finish_point("review").compile(checkpointer=saver)
    await compiled.ainvoke(None, config)
    assert (await compiled.aget_state(config)).interrupts[0].value == "async?"
    assert (await compiled.ainvoke(Command(resume="yes"), config)).log == ["yes"]
