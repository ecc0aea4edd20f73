"""Delivering a reviewer's answer again is harmless: a worker that stored the answer and died
before the next checkpoint is retried with the same `Command(resume=...)`, on every saver.

`FlakySaver` plays the dying worker: its next `put` raises (the checkpoint after the answer is
never written), or its next `put_writes` raises once the answer is stored. Each node counts
the times its code ran past `interrupt()`, so running twice would show."""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import pytest

from orchestration import END, START, Command, InvalidUpdateError, StateGraph, interrupt
from orchestration.checkpoint import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
)
from orchestration.reducers import topic

_T = TypeVar("_T")


class WorkerDied(Exception):
    pass


class FlakySaver(BaseCheckpointSaver):
    """Stores through `inner`. `fail_put` makes the next put raise without storing;
    `fail_after_put_writes` makes the next put_writes raise after storing; `kill_at_put` makes
    the next put raise and every write after it too (the worker process is gone), until
    `dead` is set back to False (a new worker)."""

    def __init__(self, inner: BaseCheckpointSaver) -> None:
        self.inner = inner
        self.fail_put = False
        self.fail_after_put_writes = False
        self.kill_at_put = False
        self.dead = False

    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        return self.inner.get_tuple(config)

    def list(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> builtins.list[CheckpointTuple]:
        return self.inner.list(config, limit, before=before, filter=filter)

    def put(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        if self.kill_at_put:
            self.kill_at_put, self.dead = False, True
        if self.dead or self.fail_put:
            self.fail_put = False
            raise WorkerDied("killed before the checkpoint was written")
        return self.inner.put(config, checkpoint, metadata)

    def put_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if self.dead:
            raise WorkerDied("killed")
        self.inner.put_writes(config, writes, task_id)
        if self.fail_after_put_writes:
            self.fail_after_put_writes = False
            raise WorkerDied("killed right after the answer was stored")

    def delete_thread(self, thread_id: str) -> None:
        self.inner.delete_thread(thread_id)

    async def _offload(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        return await self.inner._offload(fn, *args, **kwargs)


@dataclass
class Log:
    log: Annotated[list[str], topic] = field(default_factory=list)


def review_graph(saver: BaseCheckpointSaver, ran: Counter[str]) -> Any:
    def draft(state: Log) -> dict[str, Any]:
        ran["draft"] += 1
        return {"log": ["draft"]}

    def review(state: Log) -> dict[str, Any]:
        answer = interrupt("ok?")
        ran["review"] += 1
        return {"log": [f"review={answer}"]}

    def publish(state: Log) -> dict[str, Any]:
        ran["publish"] += 1
        return {"log": ["publish"]}

    graph = StateGraph(Log).add_node("draft", draft).add_node("review", review)
    graph.add_node("publish", publish).set_entry_point("draft")
    graph.add_edge("draft", "review").add_edge("review", "publish").add_edge("publish", END)
    return graph.compile(checkpointer=saver)


def parallel_graph(saver: BaseCheckpointSaver, ran: Counter[str]) -> Any:
    def asker(name: str) -> Callable[[Log], dict[str, Any]]:
        def node(state: Log) -> dict[str, Any]:
            answer = interrupt(f"{name}?")
            ran[name] += 1
            return {"log": [f"{name}={answer}"]}

        return node

    graph = StateGraph(Log).add_node("a", asker("a")).add_node("b", asker("b"))
    graph.add_edge(START, "a").add_edge(START, "b")
    return graph.add_edge("a", END).add_edge("b", END).compile(checkpointer=saver)


DONE = ["draft", "review=yes", "publish"]
ONCE = Counter(draft=1, review=1, publish=1)


def paused(saver: BaseCheckpointSaver, thread: str) -> tuple[Any, FlakySaver, Counter[str], Any]:
    flaky, ran = FlakySaver(saver), Counter[str]()
    compiled = review_graph(flaky, ran)
    config = CheckpointConfig(thread)
    compiled.invoke(None, config)
    return compiled, flaky, ran, config


def interrupt_ids(compiled: Any, config: CheckpointConfig) -> dict[str, str]:
    return {i.node: i.id for i in compiled.get_state(config).interrupts}


@pytest.mark.parametrize("by_id", [True, False], ids=["by-id", "plain"])
def test_the_same_answer_after_the_checkpoint_was_lost_continues_the_run(saver, by_id) -> None:
    compiled, flaky, ran, config = paused(saver, "lost-put")
    iid = interrupt_ids(compiled, config)["review"]
    command = Command(resume={iid: "yes"} if by_id else "yes")
    flaky.fail_put = True
    with pytest.raises(WorkerDied):
        compiled.invoke(command, config)
    assert compiled.invoke(command, config).log == DONE
    assert ran == ONCE


def test_the_same_answer_after_the_worker_died_storing_it_runs_the_node_once(saver) -> None:
    compiled, flaky, ran, config = paused(saver, "died-after-answer")
    command = Command(resume={interrupt_ids(compiled, config)["review"]: "yes"})
    flaky.fail_after_put_writes = True
    with pytest.raises(WorkerDied):
        compiled.invoke(command, config)
    assert ran["review"] == 0  # it died before the node ran with the answer
    assert compiled.invoke(command, config).log == DONE
    assert ran == ONCE


def test_a_worker_killed_mid_step_applies_the_answer_once(saver) -> None:
    """Nothing more can be written once the process is gone: the answered node runs again
    (its step never committed), but the answer is applied once and the run finishes."""
    compiled, flaky, ran, config = paused(saver, "killed")
    command = Command(resume={interrupt_ids(compiled, config)["review"]: "yes"})
    flaky.kill_at_put = True
    with pytest.raises(WorkerDied):
        compiled.invoke(command, config)
    flaky.dead = False
    assert compiled.invoke(command, config).log == DONE
    assert ran == Counter(draft=1, review=2, publish=1)


def test_an_answer_delivered_again_after_the_run_finished_runs_nothing(saver) -> None:
    compiled, _, ran, config = paused(saver, "finished")
    command = Command(resume={interrupt_ids(compiled, config)["review"]: "yes"})
    compiled.invoke(command, config)
    checkpoints = len(saver.list(config))
    assert compiled.invoke(command, config).log == DONE
    assert (ran, len(saver.list(config))) == (ONCE, checkpoints)
    iid = next(iter(command.resume))
    with pytest.raises(InvalidUpdateError, match="already answered with 'yes'"):
        compiled.invoke(Command(resume={iid: "no"}), config)
    with pytest.raises(InvalidUpdateError, match="without the update"):
        compiled.invoke(Command(resume={iid: "yes"}, update={"log": ["late"]}), config)
    with pytest.raises(InvalidUpdateError, match="has finished"):
        compiled.invoke(Command(resume="yes"), config)  # no id: it cannot tell whose answer


def test_an_answer_delivered_again_after_the_run_paused_further_on_changes_nothing(
    saver,
) -> None:
    """Two reviews in a row: the first answer, delivered again while the run waits at the
    second review, neither answers the second nor runs the first review again."""
    ran: Counter[str] = Counter()

    def reviewer(name: str) -> Callable[[Log], dict[str, Any]]:
        def node(state: Log) -> dict[str, Any]:
            answer = interrupt(f"{name}?")
            ran[name] += 1
            return {"log": [f"{name}={answer}"]}

        return node

    graph = StateGraph(Log).add_node("first", reviewer("first"))
    graph.add_node("second", reviewer("second")).set_entry_point("first")
    compiled = graph.add_edge("first", "second").set_finish_point("second").compile(
        checkpointer=saver
    )
    config = CheckpointConfig("two-reviews")
    compiled.invoke(None, config)
    command = Command(resume={interrupt_ids(compiled, config)["first"]: "yes"})
    compiled.invoke(command, config)
    waiting = interrupt_ids(compiled, config)
    assert list(waiting) == ["second"]
    assert compiled.invoke(command, config).log == ["first=yes"]
    assert interrupt_ids(compiled, config) == waiting
    assert ran == Counter(first=1)


def test_a_different_answer_to_an_answered_interrupt_is_refused(saver) -> None:
    compiled, flaky, ran, config = paused(saver, "changed")
    iid = interrupt_ids(compiled, config)["review"]
    flaky.fail_put = True
    with pytest.raises(WorkerDied):
        compiled.invoke(Command(resume={iid: "yes"}), config)
    for other in (Command(resume={iid: "no"}), Command(resume="no")):
        with pytest.raises(InvalidUpdateError, match=r"already answered with 'yes'.*invoke\(None"):
            compiled.invoke(other, config)
    assert compiled.invoke(None, config).log == DONE
    assert ran == ONCE


def test_an_unknown_interrupt_id_is_refused_not_taken_as_the_answer(saver) -> None:
    compiled, _, ran, config = paused(saver, "unknown-id")
    with pytest.raises(InvalidUpdateError, match="has no interrupt"):
        compiled.invoke(Command(resume={"0" * 24: "yes"}), config)
    assert ran["review"] == 0 and compiled.get_state(config).next == ("review",)


@pytest.mark.parametrize("die", ["before-update", "after-update"])
def test_a_resume_commands_update_is_applied_once_when_delivered_again(saver, die) -> None:
    compiled, flaky, ran, config = paused(saver, f"update-{die}")
    iid = interrupt_ids(compiled, config)["review"]
    command = Command(resume={iid: "yes"}, update={"log": ["note"]})
    if die == "before-update":
        flaky.fail_after_put_writes = True  # the answer is stored, the update is not
    else:
        flaky.fail_put = True
    with pytest.raises(WorkerDied):
        compiled.invoke(command, config)
    assert compiled.invoke(command, config).log == ["draft", "note", "review=yes", "publish"]
    assert ran == ONCE
    finished = compiled.invoke(command, config)  # the run has moved on: the update was applied
    assert (finished.log.count("note"), ran) == (1, ONCE)
    with pytest.raises(InvalidUpdateError, match="came with another update"):
        compiled.invoke(Command(resume={iid: "yes"}, update={"log": ["other"]}), config)


def test_answers_by_id_apply_the_new_ones_and_accept_repeated_ones(saver) -> None:
    flaky, ran = FlakySaver(saver), Counter[str]()
    compiled = parallel_graph(flaky, ran)
    config = CheckpointConfig("parallel")
    compiled.invoke(None, config)
    ids = interrupt_ids(compiled, config)
    compiled.invoke(Command(resume={ids["a"]: "x"}), config)  # `a` finishes, `b` still waits
    assert interrupt_ids(compiled, config) == {"b": ids["b"]}
    with pytest.raises(InvalidUpdateError, match="already answered with 'x'"):
        compiled.invoke(Command(resume={ids["a"]: "changed", ids["b"]: "y"}), config)
    assert interrupt_ids(compiled, config) == {"b": ids["b"]}  # nothing was written
    result = compiled.invoke(Command(resume={ids["a"]: "x", ids["b"]: "y"}), config)
    assert sorted(result.log) == ["a=x", "b=y"]
    assert ran == Counter(a=1, b=1)


def test_both_answers_delivered_again_after_the_checkpoint_was_lost(saver) -> None:
    flaky, ran = FlakySaver(saver), Counter[str]()
    compiled = parallel_graph(flaky, ran)
    config = CheckpointConfig("parallel-lost")
    compiled.invoke(None, config)
    ids = interrupt_ids(compiled, config)
    command = Command(resume={ids["a"]: "x", ids["b"]: "y"})
    flaky.fail_put = True
    with pytest.raises(WorkerDied):
        compiled.invoke(command, config)
    assert sorted(compiled.invoke(command, config).log) == ["a=x", "b=y"]
    assert ran == Counter(a=1, b=1)


async def test_the_same_answer_delivered_again_under_ainvoke(saver) -> None:
    flaky, ran = FlakySaver(saver), Counter[str]()
    compiled = review_graph(flaky, ran)
    config = CheckpointConfig("async")
    await compiled.ainvoke(None, config)
    iid = (await compiled.aget_state(config)).interrupts[0].id
    command = Command(resume={iid: "yes"})
    flaky.fail_put = True
    with pytest.raises(WorkerDied):
        await compiled.ainvoke(command, config)
    assert (await compiled.ainvoke(command, config)).log == DONE
    assert (await compiled.ainvoke(command, config)).log == DONE  # finished: runs nothing
    assert ran == ONCE


async def test_the_same_answer_after_dying_storing_it_under_ainvoke(saver) -> None:
    flaky, ran = FlakySaver(saver), Counter[str]()
    compiled = review_graph(flaky, ran)
    config = CheckpointConfig("async-died")
    await compiled.ainvoke(None, config)
    iid = (await compiled.aget_state(config)).interrupts[0].id
    flaky.fail_after_put_writes = True
    with pytest.raises(WorkerDied):
        await compiled.ainvoke(Command(resume={iid: "yes"}), config)
    assert (await compiled.ainvoke(Command(resume={iid: "yes"}), config)).log == DONE
    assert ran == ONCE
