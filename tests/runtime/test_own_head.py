"""A worker's read of the head it just wrote (`read_own_head_next`), answered from what its
saver put and wrote since, without a round trip. What must hold: the answer equals a read of
the database (values, next, metadata, parent, pending writes in their read order), for a
pause and a finish, sync and write-behind, with a lease; it answers one read only; a write
whose outcome is unknown (a lost lease) leaves nothing to trust; and a worker's run records
the head the database holds."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from runtime_helpers import leased_run

from orchestration import END, START, StateGraph, interrupt
from orchestration.checkpoint import CheckpointConfig
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


@dataclass
class Form:
    amount: int = 0
    log: Annotated[list[str], operator.add] = field(default_factory=list)
    a: str = ""
    b: str = ""


def _graph(saver: DjangoCheckpointSaver) -> Any:
    """Two parallel askers (two interrupts: pending writes of two tasks at the pause, and a
    finished sibling's writes when only one is answered), then a last node."""

    def prepare(state: Form) -> dict[str, Any]:
        return {"log": ["prepare"], "amount": state.amount + 1}

    def ask_a(state: Form) -> dict[str, Any]:
        return {"a": interrupt({"ask": "a", "amount": state.amount}), "log": ["a"]}

    def ask_b(state: Form) -> dict[str, Any]:
        return {"b": interrupt({"ask": "b"}), "log": ["b"]}

    def done(state: Form) -> dict[str, Any]:
        return {"log": ["done"]}

    builder = StateGraph(Form)
    builder.add_node("prepare", prepare)
    builder.add_node("ask_a", ask_a)
    builder.add_node("ask_b", ask_b)
    builder.add_node("done", done)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "ask_a")
    builder.add_edge("prepare", "ask_b")
    builder.add_edge(["ask_a", "ask_b"], "done")
    builder.add_edge("done", END)
    return builder.compile().with_checkpoint_saver(saver)


def _read(config: CheckpointConfig) -> Any:
    """The head as another process reads it."""
    return DjangoCheckpointSaver().get_tuple(config)


def _head_reads(queries: CaptureQueriesContext) -> int:
    return sum("ORDER BY c.checkpoint_id DESC LIMIT 1" in q["sql"]
               for q in queries.captured_queries)


def _own(saver: DjangoCheckpointSaver, config: CheckpointConfig) -> Any:
    """The saver's own head, checked to be answered without a statement on Django's
    connection (write-behind commits went on the private one before it)."""
    saver.flush()
    with CaptureQueriesContext(connection) as queries:
        saver.read_own_head_next()
        own = saver.get_tuple(config)
    assert not [q for q in queries.captured_queries if "orchestration_" in q["sql"]]
    return own


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_the_own_head_equals_a_read_of_the_database_at_a_pause_and_at_the_end(
    durability: str,
) -> None:
    config = CheckpointConfig(f"own-{durability}")
    _, lease = leased_run(config.thread_id)
    saver = DjangoCheckpointSaver(lease=lease, durability=durability)
    graph = _graph(saver)

    graph.invoke({"amount": 1}, config)
    paused = _own(saver, config)
    assert paused == _read(config)
    assert {w.channel for w in paused.pending_writes} >= {"__interrupt__"}
    state = graph.get_state(config)
    assert len(state.interrupts) == 2 and set(state.next) == {"ask_a", "ask_b"}

    # One answer: ask_a finishes, ask_b asks again (its writes replace its earlier ones).
    first = next(i for i in state.interrupts if i.value["ask"] == "a")
    graph.invoke(Command(resume={first.id: "yes"}), config)
    again = _own(saver, config)
    assert again == _read(config)
    assert again.pending_writes == _read(config).pending_writes  # same order

    graph.invoke(Command(resume="ok"), config)
    finished = _own(saver, config)
    assert finished == _read(config)
    assert finished.checkpoint.next == () and finished.checkpoint.values["log"] == [
        "prepare", "a", "b", "done"
    ]


def test_the_own_head_answers_one_read_and_only_of_its_own_thread_head() -> None:
    config = CheckpointConfig("own-once")
    _, lease = leased_run(config.thread_id)
    saver = DjangoCheckpointSaver(lease=lease)
    _graph(saver).invoke({"amount": 1}, config)
    head = _own(saver, config)

    # Another writer's row in the thread (outside the lease, as a test can): reads see it.
    other = DjangoCheckpointSaver()
    other.put_writes(head.config, [("a", "late")], "someone-else")
    with CaptureQueriesContext(connection) as queries:
        read = saver.get_tuple(config)  # not armed: a read of the database
    assert queries.captured_queries
    assert "someone-else" in {w.task_id for w in read.pending_writes}

    # Armed, but for another thread or a named checkpoint: read from the database.
    saver.read_own_head_next()
    assert saver.get_tuple(CheckpointConfig("own-once-other")) is None
    saver.read_own_head_next()
    named = saver.get_tuple(head.config)
    assert "someone-else" in {w.task_id for w in named.pending_writes}
    # ...and the arming is spent by that read.
    with CaptureQueriesContext(connection) as queries:
        saver.get_tuple(config)
    assert queries.captured_queries


def test_a_new_threads_head_is_answered_none_once_and_not_after_a_write() -> None:
    config = CheckpointConfig("own-empty")
    _, lease = leased_run(config.thread_id)
    saver = DjangoCheckpointSaver(lease=lease)
    saver.no_head_next("another-thread")
    with CaptureQueriesContext(connection) as queries:
        assert saver.get_tuple(config) is None  # another thread's: read
    assert _head_reads(queries) == 1
    saver.no_head_next(config.thread_id)
    with CaptureQueriesContext(connection) as queries:
        assert saver.get_tuple(config) is None
        assert saver.get_tuple(config) is None  # once only: this one reads
    assert _head_reads(queries) == 1

    # A write in between disarms it: the read sees the checkpoint.
    graph = _graph(saver)
    saver.no_head_next(config.thread_id)
    graph.invoke({"amount": 1}, config)
    assert graph.get_state(config).next
    saver.no_head_next(config.thread_id)
    saver.put_writes(_read(config).config, [("a", "x")], "t")
    assert saver.get_tuple(config) == _read(config)


def test_a_write_refused_by_a_lost_lease_leaves_no_own_head_to_trust() -> None:
    config = CheckpointConfig("own-lost")
    run, lease = leased_run(config.thread_id)
    saver = DjangoCheckpointSaver(lease=lease, durability="async")
    graph = _graph(saver)
    graph.invoke({"amount": 1}, config)
    head = _read(config)
    models.Run.objects.filter(pk=run.pk).update(lease_token="someone-else")
    with pytest.raises(LeaseLost):
        saver.put_writes(head.config, [("a", "x")], "t")
        saver.flush()
    saver.read_own_head_next()
    with CaptureQueriesContext(connection) as queries:
        assert saver.get_tuple(config) == head  # read: nothing of the refused write
    assert queries.captured_queries


def test_a_worker_records_the_head_the_database_holds(settings: Any) -> None:
    """Through `execute_run` (the worker's `record_outcome`): the run's pause and its end
    record the thread's latest checkpoint as its head, the interrupts the engine stored in
    the review and the event."""
    from django.contrib.auth.models import Group, User

    from approvals.actions import DecisionInput, do_decide
    from approvals.models import ReviewRequest
    from orchestration.runtime.registry import get_graph
    from orchestration.runtime.runs import start_thread
    from orchestration.runtime.tasks import execute_run

    settings.STEPWISE_REVIEW_DUE_SECONDS = {"expense": 3600}
    user = User.objects.create(username="own-head-reviewer")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    expense = {"expense_id": 1, "employee": "E", "vendor": "Office Supplies Co",
               "amount": 150, "currency": "EUR", "description": "own head"}
    run = start_thread("expense", expense, user=user, title="own head")
    with CaptureQueriesContext(connection) as queries:
        assert execute_run.call(run.pk)["outcome"] == "waiting"
    # a new thread's first run reads no head: not the engine's (none yet), not the one it
    # wrote (`record_outcome`)
    assert _head_reads(queries) == 0
    # nor the thread's row again to open the review: the pause just wrote it
    assert not [q for q in queries.captured_queries
                if 'FROM "orchestration_thread" t WHERE t.id' in q["sql"]]
    thread = models.Thread.objects.get(pk=run.thread_id)
    latest = _read(CheckpointConfig(thread.thread_id))
    assert thread.status == models.Thread.Status.WAITING
    assert thread.head_checkpoint_id == latest.checkpoint.id
    fresh = get_graph("expense").with_checkpoint_saver(DjangoCheckpointSaver())
    stored = [i.id for i in fresh.get_state(CheckpointConfig(thread.thread_id)).interrupts]
    event = models.Event.objects.get(run=run, kind="run_waiting")
    assert event.data["interrupts"] == stored and len(stored) == 1
    review = ReviewRequest.objects.get(thread=thread)
    assert review.interrupt_id == stored[0] and review.checkpoint_id == latest.checkpoint.id
    assert review.run_id == run.pk and review.status == ReviewRequest.Status.PENDING
    assert review.due_at is not None  # the thread's graph's deadline (its name read right)

    do_decide(user, review, DecisionInput(action="approve"))
    resumed = models.Run.objects.filter(thread=thread).order_by("-pk").first()
    assert resumed.pk != run.pk
    with CaptureQueriesContext(connection) as queries:
        assert execute_run.call(resumed.pk)["outcome"] == "succeeded"
    assert _head_reads(queries) == 1  # the plan's, which answers the engine's too
    thread.refresh_from_db()
    latest = _read(CheckpointConfig(thread.thread_id))
    assert thread.status == models.Thread.Status.DONE
    assert thread.head_checkpoint_id == latest.checkpoint.id
    assert latest.checkpoint.next == ()
