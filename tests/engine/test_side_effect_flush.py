"""Before a node declared with side effects runs, the engine asks the saver for a durable
flush (`flush_durable`: on disk, not only committed); at the end of a run, a `flush`. Sync
and asyncio drivers alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

from orchestration import END, StateGraph
from orchestration.checkpoint import CheckpointConfig, InMemoryCheckpointSaver
from orchestration.reducers import topic


@dataclass
class Log:
    ran: Annotated[list[str], topic] = field(default_factory=list)


class RecordingSaver(InMemoryCheckpointSaver):
    """The in-memory saver, noting each flush among the nodes that ran."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def flush(self) -> None:
        self.events.append("flush")

    def flush_durable(self) -> None:
        self.events.append("flush_durable")


def _graph(events: list[str]) -> Any:
    def node(name: str) -> Any:
        def run(state: Log) -> dict[str, Any]:
            events.append(name)
            return {"ran": [name]}

        return run

    builder = StateGraph(Log)
    builder.add_node("prepare", node("prepare"))
    builder.add_node("pay", node("pay"), side_effects=True)
    builder.set_entry_point("prepare")
    builder.add_edge("prepare", "pay").add_edge("pay", END)
    return builder.compile()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_side_effect_node_runs_after_a_durable_flush(mode: str) -> None:
    events: list[str] = []
    graph = _graph(events).with_checkpoint_saver(RecordingSaver(events))
    config = CheckpointConfig(f"flush-{mode}")
    if mode == "sync":
        graph.invoke({}, config)
    else:
        asyncio.run(graph.ainvoke({}, config))
    assert events == ["prepare", "flush_durable", "pay", "flush"]
