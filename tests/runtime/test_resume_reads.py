"""Reads a worker's resume run no longer makes: the engine's read of the head right after the
worker read it to plan (`keep_next_read`), and the field values of the head read after the
run's last put (cached from the resume's read, scalars included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration import END, StateGraph, interrupt
from orchestration.checkpoint import CheckpointConfig
from orchestration.runtime.savers import DjangoCheckpointSaver
from orchestration.runtime.write_behind import close_writers
from orchestration.types import Command

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _close_writers() -> Any:
    yield
    close_writers()


@dataclass
class Form:
    amount: int = 0
    vendor: str = ""
    answer: str = ""


def _graph(saver: DjangoCheckpointSaver) -> Any:
    def ask(state: Form) -> dict[str, Any]:
        return {"answer": interrupt("approve?")}

    builder = StateGraph(Form)
    builder.add_node("ask", ask)
    builder.set_entry_point("ask")
    builder.add_edge("ask", END)
    return builder.compile().with_checkpoint_saver(saver)


def _fetches(queries: CaptureQueriesContext) -> int:
    return sum("orchestration_fieldversion" in q["sql"] for q in queries.captured_queries)


def test_a_kept_head_read_answers_the_next_read_once_and_never_after_a_write() -> None:
    config = CheckpointConfig("kept")
    writer = DjangoCheckpointSaver()
    graph = _graph(writer)
    graph.invoke({"amount": 5, "vendor": "v"}, config)
    first = writer.get_tuple(config)
    assert first is not None

    saver = DjangoCheckpointSaver()
    saver.keep_next_read()
    assert saver.get_tuple(config) == first
    # Someone else moves the head: the kept read answers the one read after it, no more.
    graph.invoke(Command(resume="yes"), config)
    moved = writer.get_tuple(config)
    assert moved is not None and moved.checkpoint.id != first.checkpoint.id
    assert saver.get_tuple(config) == first  # the kept one (no read: it cannot see the move)
    assert saver.get_tuple(config) == moved  # read again

    # A write by the saver in between drops what it kept.
    saver.keep_next_read()
    head = saver.get_tuple(config)
    assert head == moved
    saver.put_writes(head.config, [("answer", "x")], "someone")  # type: ignore[union-attr]
    again = saver.get_tuple(config)
    assert again is not None and [w.channel for w in again.pending_writes] == ["answer"]
    # Without keep_next_read every read reads.
    assert saver.get_tuple(config) == again


def test_the_head_read_after_a_resumes_put_fetches_no_field_value_it_read_before() -> None:
    config = CheckpointConfig("cached-scalars")
    _graph(DjangoCheckpointSaver()).invoke({"amount": 7, "vendor": "acme"}, config)
    saver = DjangoCheckpointSaver()
    graph = _graph(saver)
    with CaptureQueriesContext(connection) as reads:
        state = graph.invoke(Command(resume="yes"), config)
        assert state.answer == "yes"
        head = graph.get_state(config)
    assert head.values.amount == 7 and head.values.vendor == "acme"
    # Only the resume's read of the paused checkpoint fetched values (amount, vendor; the
    # answer is the put's own): the read after the put found them cached.
    assert _fetches(reads) <= 1
