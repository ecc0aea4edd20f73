"""Checkpoints and the savers that store them. Importing this needs no Django."""

from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
)
from orchestration.checkpoint.memory import InMemoryCheckpointSaver
from orchestration.checkpoint.sqlite import SqliteSaver

# LangGraph's names for the in-memory saver (`langgraph.checkpoint.memory`).
InMemorySaver = InMemoryCheckpointSaver
MemorySaver = InMemoryCheckpointSaver

__all__ = [
    "BaseCheckpointSaver",
    "Checkpoint",
    "CheckpointConfig",
    "CheckpointMetadata",
    "CheckpointTuple",
    "InMemoryCheckpointSaver",
    "InMemorySaver",
    "MemorySaver",
    "PendingWrite",
    "SqliteSaver",
]
