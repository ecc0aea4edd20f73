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

__all__ = [
    "BaseCheckpointSaver",
    "Checkpoint",
    "CheckpointConfig",
    "CheckpointMetadata",
    "CheckpointTuple",
    "InMemoryCheckpointSaver",
    "PendingWrite",
    "SqliteSaver",
]
