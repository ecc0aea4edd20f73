"""The support-agent demo: streamed text, tool calls reviewed (approve / edit / reject with a
reason that goes back to the model), memory per customer across threads, a tools subgraph."""

from __future__ import annotations

from typing import Any

from demo.workflows.support import Ticket, graph
from orchestration import Command
from orchestration.checkpoint import CheckpointConfig, InMemoryCheckpointSaver
from orchestration.store import InMemoryStore


def answer(action: str, **fields: Any) -> Command[Any]:
    base = {"action": action, "comment": "", "values": {}, "text": "", "reviewer": "rita"}
    return Command(resume={**base, **fields})


def setup() -> tuple[Any, InMemoryCheckpointSaver, InMemoryStore]:
    saver, store = InMemoryCheckpointSaver(), InMemoryStore()
    return graph.with_checkpoint_saver(saver).with_store(store), saver, store


REFUND = "My order A-1001 arrived damaged, I want a refund. Please email me."


def test_the_model_streams_its_text_and_pauses_on_the_refund() -> None:
    g, saver, _ = setup()
    config = CheckpointConfig("t")
    chunks = [
        c
        for m, c in g.stream(Ticket("c-42", REFUND), config, stream_mode=["custom", "updates"])
        if m == "custom"
    ]
    text = "".join(c for c in chunks if isinstance(c, str))
    assert text.startswith("Let me look up order A-1001 for you.")
    assert len([c for c in chunks if isinstance(c, str)]) > 10  # token by token
    assert {"tool_call": "issue_refund", "args": {"order_id": "A-1001", "amount": 249.0}} in chunks
    (asked,) = g.get_state(config).interrupts
    assert asked.node == "tools|review"
    assert asked.value["data"] == {"order_id": "A-1001", "amount": 249.0}
    # QA: the review page showed "249.0"; shown as money like the expense review's amount
    from approvals.schema_render import render_value

    assert "€249.00" in render_value(asked.value["data"], asked.value["data_schema"])
    # the read-only lookup ran in the tools subgraph without a review
    assert saver.list(CheckpointConfig("t", checkpoint_ns="tools"))


def test_edited_arguments_are_what_the_tool_runs_with() -> None:
    g, _, store = setup()
    config = CheckpointConfig("t")
    g.invoke(Ticket("c-42", REFUND), config)
    g.invoke(answer("edit", values={"order_id": "A-1001", "amount": 120.0}), config)
    refund = store.get(("refunds", "c-42"), "A-1001")
    assert refund is not None and refund.value["amount"] == 120.0
    (asked,) = g.get_state(config).interrupts  # then the confirmation email
    assert asked.value["title"] == "Allow send_email for c-42?"


def test_a_rejection_reason_goes_back_to_the_model() -> None:
    g, _, store = setup()
    config = CheckpointConfig("t")
    g.invoke(Ticket("c-42", REFUND), config)
    final = g.invoke(answer("reject", comment="over the refund limit"), config)
    assert final.reply == (
        "I am sorry, I cannot issue that refund: over the refund limit. "
        "A colleague will contact you."
    )
    assert store.get(("refunds", "c-42"), "A-1001") is None  # the side effect never ran
    fact = store.get(("customers", "c-42"), "last-refund")
    assert fact is not None and "refused: over the refund limit" in fact.value["fact"]


def test_facts_about_a_customer_outlive_the_thread() -> None:
    g, _, _ = setup()
    g.invoke(Ticket("c-42", REFUND), CheckpointConfig("first"))  # still waiting for review
    later = g.invoke(Ticket("c-42", "Where is my order A-1002?"), CheckpointConfig("second"))
    assert later.reply == "Your Coffee grinder is in transit."
    assert later.messages[1]["content"].startswith("Welcome back! I remember you prefer email.")
    stranger = g.invoke(Ticket("c-7", "Where is my order A-1002?"), CheckpointConfig("third"))
    assert not stranger.messages[1]["content"].startswith("Welcome back")
