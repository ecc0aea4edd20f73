"""Stepwise's engine: resumable graph workflows in Pregel supersteps. Imports no Django."""

from orchestration.compiled import CompiledGraph
from orchestration.config import RunnableConfig, get_config
from orchestration.context import (
    Runtime,
    StreamWriter,
    get_runtime,
    get_store,
    get_stream_writer,
)
from orchestration.errors import (
    CheckpointNotFound,
    EmptyInputError,
    GraphRecursionError,
    GraphValidationError,
    InvalidUpdateError,
    NodeError,
    OrchestrationError,
    ParentCommand,
    SerializationError,
    ThreadBusyError,
)
from orchestration.graph import StateGraph
from orchestration.interrupts import GraphInterrupt, interrupt, task_key
from orchestration.messages import MessagesState, add_messages
from orchestration.pregel.durability import Durability
from orchestration.pregel.effects import StreamMode
from orchestration.types import (
    END,
    START,
    TAG_NOSTREAM,
    CachePolicy,
    Command,
    Interrupt,
    Overwrite,
    PregelTask,
    RetryPolicy,
    Send,
    StateSnapshot,
    StateUpdate,
)

__all__ = [
    "CachePolicy",
    "END",
    "START",
    "TAG_NOSTREAM",
    "CheckpointNotFound",
    "Command",
    "EmptyInputError",
    "CompiledGraph",
    "Durability",
    "GraphInterrupt",
    "GraphRecursionError",
    "ParentCommand",
    "GraphValidationError",
    "Interrupt",
    "InvalidUpdateError",
    "MessagesState",
    "NodeError",
    "OrchestrationError",
    "Overwrite",
    "PregelTask",
    "RetryPolicy",
    "RunnableConfig",
    "Runtime",
    "Send",
    "SerializationError",
    "StateGraph",
    "StateSnapshot",
    "StateUpdate",
    "StreamMode",
    "StreamWriter",
    "ThreadBusyError",
    "add_messages",
    "get_config",
    "get_runtime",
    "get_store",
    "get_stream_writer",
    "interrupt",
    "task_key",
]
