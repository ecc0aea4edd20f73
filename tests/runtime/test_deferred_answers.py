"""A resume's answers held back for the resumed superstep's put (`put_writes_deferred`): on
PostgreSQL with write-behind they commit in the put's own statement, on SQLite in the put's
transaction (one commit instead of two). What must still hold: the answers are never lost
without their superstep, a crash between leaves the thread waiting at its interrupt,
delivering the answer again resumes it once, a lost lease writes neither, and a read or a
failing node sees them written."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from runtime_helpers import (
    HERE,
    ROOT,
    checkpoint_count,
    leased_run,
    pending_write_channels,
    subprocess_env,
)
from write_behind_graphs import ask_graph

from orchestration import END, StateGraph, interrupt
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


def _worker_durability() -> str:
    """A worker's saver's (`tasks._durability`): on PostgreSQL the answers ride in the
    send-ahead writer's put statement, on SQLite in the synchronous put's transaction."""
    return "async" if connection.vendor == "postgresql" else "sync"


@dataclass
class Q:
    answer: str = ""


def _asker(after_answer: Any) -> Any:
    def ask(state: Q) -> dict[str, Any]:
        answer = interrupt("approve?")
        after_answer(answer)
        return {"answer": answer}

    builder = StateGraph(Q)
    builder.add_node("ask", ask)
    builder.set_entry_point("ask")
    builder.add_edge("ask", END)
    return builder.compile()


def test_the_answer_commits_with_the_resumed_superstep_not_before() -> None:
    _, lease = leased_run("held")
    seen: list[list[str]] = []
    graph = _asker(lambda _: seen.append(pending_write_channels("held"))).with_checkpoint_saver(
        DjangoCheckpointSaver(lease=lease, durability=_worker_durability())
    )
    config = CheckpointConfig("held")
    graph.invoke({}, config)
    assert pending_write_channels("held") == ["__interrupt__"] and checkpoint_count("held") == 1
    assert graph.invoke(Command(resume="yes"), config).answer == "yes"
    # While the node ran the answer was not committed yet: it went with the next put.
    assert seen == [["__interrupt__"]]
    assert checkpoint_count("held") == 2
    assert sorted(pending_write_channels("held")) == ["__interrupt__", "__resume__"]
    head = DjangoCheckpointSaver().get_tuple(config)
    assert head is not None and head.checkpoint.values["answer"] == "yes"
    parent = DjangoCheckpointSaver().get_tuple(head.parent_config)  # type: ignore[arg-type]
    assert parent is not None
    assert [w.channel for w in parent.pending_writes] == ["__resume__", "__interrupt__"]


def test_a_crash_before_the_put_leaves_the_thread_waiting_and_a_second_delivery_resumes_once(
    tmp_path: Path,
) -> None:
    log = tmp_path / "ran.log"
    graph = ask_graph().with_checkpoint_saver(
        DjangoCheckpointSaver(durability=_worker_durability()))
    config = CheckpointConfig("crash-answer")
    graph.invoke({"log": str(log)}, config)
    paused_at = DjangoCheckpointSaver().get_tuple(config)
    assert paused_at is not None
    child = subprocess.run(
        [sys.executable, str(HERE / "write_behind_graphs.py"), "answer", "crash-answer", "yes"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, timeout=120, check=False,
    )
    assert child.returncode == -9, child.stderr.decode(errors="replace")[-3000:]
    assert Counter(log.read_text().split()) == {"asked": 2, "answered-yes": 1}
    # Nothing of the resume was committed: the thread waits at its interrupt, as before it.
    state = graph.get_state(config)
    assert state.config.checkpoint_id == paused_at.checkpoint.id
    assert [i.value for i in state.interrupts] == ["approve?"]
    assert pending_write_channels("crash-answer") == ["__interrupt__"]

    final = graph.invoke(Command(resume="yes"), config)  # a worker's retry does this
    assert final.answer == "yes"
    assert Counter(log.read_text().split()) == {"asked": 3, "answered-yes": 2}
    assert checkpoint_count("crash-answer") == 2  # the paused checkpoint and the resumed one
    assert graph.get_state(config).next == ()


def test_a_lost_lease_writes_neither_the_answer_nor_the_superstep() -> None:
    run, lease = leased_run("revoked")

    def revoke(_: Any) -> None:
        models.Run.objects.filter(pk=run.pk).update(
            status=models.Run.Status.STALLED, lease_token=""
        )

    graph = _asker(revoke).with_checkpoint_saver(
        DjangoCheckpointSaver(lease=lease, durability=_worker_durability())
    )
    config = CheckpointConfig("revoked")
    graph.invoke({}, config)
    with pytest.raises(LeaseLost):
        graph.invoke(Command(resume="yes"), config)
    assert checkpoint_count("revoked") == 1
    assert pending_write_channels("revoked") == ["__interrupt__"]


def test_a_failing_resumed_node_still_leaves_its_answer_stored() -> None:
    """The run fails after the answer was held: the engine's flush on the way out writes it
    (as before: the answer was committed before the node ran), so the thread keeps it."""

    def fail(_: Any) -> None:
        raise RuntimeError("the node broke after its answer")

    _, lease = leased_run("failing")
    graph = _asker(fail).with_checkpoint_saver(
        DjangoCheckpointSaver(lease=lease, durability=_worker_durability())
    )
    config = CheckpointConfig("failing")
    graph.invoke({}, config)
    with pytest.raises(RuntimeError, match="broke"):
        graph.invoke(Command(resume="yes"), config)
    # the question, its answer, and the record of how the node failed (get_state's tasks)
    assert sorted(pending_write_channels("failing")) == [
        "__error__", "__interrupt__", "__resume__"
    ]
    assert checkpoint_count("failing") == 1
    assert graph.get_state(config).interrupts == ()
