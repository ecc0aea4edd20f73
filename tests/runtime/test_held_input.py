"""A run's input checkpoint held back for its first superstep (PostgreSQL write-behind): the
pending writes of that superstep (an interrupt at the first node, a failed task's finished
siblings) commit in the put's own statement, one commit instead of two. What must still hold:
both commit in one transaction or neither does, a lost lease writes neither, anything else the
saver (or another saver on the thread) does sends the input first, and a failing first node
leaves the input checkpoint stored as before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from django.db import connection
from runtime_helpers import checkpoint_count, leased_run, pending_write_channels

from orchestration import END, START, StateGraph, interrupt
from orchestration.checkpoint import CheckpointConfig
from orchestration.reducers import topic
from orchestration.runtime import models
from orchestration.runtime.leases import LeaseLost
from orchestration.runtime.savers import DjangoCheckpointSaver
from orchestration.runtime.write_behind import close_writers
from orchestration.types import Command

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _close_writers() -> Any:
    yield
    close_writers()  # its private connection must not outlive the test database


def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the input put is held for its first superstep on PostgreSQL only")


def _transactions(thread_id: str) -> set[str]:
    """The transactions (PostgreSQL's `xmin`) that wrote the thread's checkpoint and pending
    write rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.xmin::text FROM orchestration_checkpoint c JOIN orchestration_thread t "
            "ON t.id = c.thread_id WHERE t.thread_id = %s UNION SELECT w.xmin::text "
            "FROM orchestration_pendingwrite w JOIN orchestration_checkpoint c "
            "ON c.id = w.checkpoint_id JOIN orchestration_thread t ON t.id = c.thread_id "
            "WHERE t.thread_id = %s",
            [thread_id, thread_id],
        )
        return {xid for (xid,) in cursor.fetchall()}


@dataclass
class Q:
    answer: str = ""


def _asker(before_asking: Any = None) -> Any:
    def ask(state: Q) -> dict[str, Any]:
        if before_asking is not None:
            before_asking()
        return {"answer": interrupt("approve?")}

    builder = StateGraph(Q)
    builder.add_node("ask", ask)
    builder.set_entry_point("ask")
    builder.add_edge("ask", END)
    return builder.compile()


def test_an_interrupt_at_the_first_node_commits_with_the_input_checkpoint() -> None:
    _postgres_only()
    _, lease = leased_run("first")
    seen: list[int] = []
    graph = _asker(lambda: seen.append(checkpoint_count("first"))).with_checkpoint_saver(
        DjangoCheckpointSaver(lease=lease, durability="async")
    )
    config = CheckpointConfig("first")
    graph.invoke({}, config)
    assert seen == [0]  # not sent while the node ran: it went with the interrupt's writes
    assert checkpoint_count("first") == 1 and pending_write_channels("first") == ["__interrupt__"]
    assert len(_transactions("first")) == 1  # one commit for both
    state = graph.with_checkpoint_saver(DjangoCheckpointSaver()).get_state(config)
    assert [i.value for i in state.interrupts] == ["approve?"]
    assert graph.invoke(Command(resume="yes"), config).answer == "yes"
    assert checkpoint_count("first") == 2


def test_a_lost_lease_during_the_first_node_writes_neither_the_input_nor_the_interrupt() -> None:
    _postgres_only()
    run, lease = leased_run("lost-first")

    def revoke() -> None:
        models.Run.objects.filter(pk=run.pk).update(
            status=models.Run.Status.STALLED, lease_token=""
        )

    graph = _asker(revoke).with_checkpoint_saver(
        DjangoCheckpointSaver(lease=lease, durability="async")
    )
    with pytest.raises(LeaseLost):
        graph.invoke({}, CheckpointConfig("lost-first"))
    assert checkpoint_count("lost-first") == 0 and pending_write_channels("lost-first") == []


def test_another_saver_reading_the_thread_during_the_first_node_sees_the_input() -> None:
    _postgres_only()
    _, lease = leased_run("peek")
    config = CheckpointConfig("peek")
    seen: list[Any] = []
    graph = _asker(lambda: seen.append(DjangoCheckpointSaver().get_tuple(config)))
    graph = graph.with_checkpoint_saver(DjangoCheckpointSaver(lease=lease, durability="async"))
    graph.invoke({}, config)
    assert len(seen) == 1 and seen[0] is not None
    assert seen[0].metadata.source == "input" and seen[0].checkpoint.next == ("ask",)
    # Sent on its own for that read: the interrupt's writes committed after it.
    assert checkpoint_count("peek") == 1 and pending_write_channels("peek") == ["__interrupt__"]
    assert len(_transactions("peek")) == 2


def test_a_failing_first_node_leaves_the_input_checkpoint_stored() -> None:
    _postgres_only()
    _, lease = leased_run("broken")

    def fail() -> None:
        raise RuntimeError("the first node broke")

    graph = _asker(fail).with_checkpoint_saver(
        DjangoCheckpointSaver(lease=lease, durability="async")
    )
    config = CheckpointConfig("broken")
    with pytest.raises(RuntimeError, match="broke"):
        graph.invoke({}, config)
    assert checkpoint_count("broken") == 1
    head = DjangoCheckpointSaver().get_tuple(config)
    assert head is not None and head.metadata.source == "input"


@dataclass
class Fan:
    done: Annotated[list[str], topic]
    answer: str = ""


def test_a_first_superstep_with_an_interrupt_and_a_finished_sibling_keeps_both_writes() -> None:
    """The first task's writes ride with the input; the second task's follow on their own."""
    _postgres_only()
    _, lease = leased_run("fan")

    ran: list[str] = []

    def ask(state: Fan) -> dict[str, Any]:
        return {"answer": interrupt("approve?")}

    def work(state: Fan) -> dict[str, Any]:
        ran.append("work")
        return {"done": ["work"]}

    builder = StateGraph(Fan)
    builder.add_node("ask", ask)
    builder.add_node("work", work)
    builder.add_edge(START, "ask")
    builder.add_edge(START, "work")
    builder.add_edge("ask", END)
    builder.add_edge("work", END)
    graph = builder.compile().with_checkpoint_saver(
        DjangoCheckpointSaver(lease=lease, durability="async")
    )
    config = CheckpointConfig("fan")
    graph.invoke({"done": []}, config)
    assert checkpoint_count("fan") == 1
    assert {"__interrupt__", "done"} <= set(pending_write_channels("fan"))
    assert len(_transactions("fan")) == 2
    final = graph.invoke(Command(resume="yes"), config)
    assert final.answer == "yes" and final.done == ["work"]
    assert ran == ["work"]  # its stored writes were used: it did not run again
