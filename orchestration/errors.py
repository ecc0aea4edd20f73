"""Every error the engine raises, in one tree.

    OrchestrationError
    ├── GraphValidationError    compile() found problems; `.problems` lists all of them
    ├── InvalidUpdateError      a node returned something the schema or reducers refuse
    │   ├── AmbiguousResumeError    one plain `Command(resume=x)` for several pending
    │   │                           interrupts (also a `RuntimeError`, as LangGraph raises)
    │   └── ReducerValueError       a field's reducer refused an update with a `ValueError`
    │                               (also a `ValueError`, the error LangGraph lets through)
    ├── GraphRecursionError     more supersteps than `recursion_limit`; the thread is resumable
    ├── ParentCommand           a node of a graph that is not a subgraph returned
    │                           `Command(graph=Command.PARENT)` (inside a subgraph it carries
    │                           the command to the parent and is never seen)
    ├── CheckpointNotFound      a config names a checkpoint that does not exist
    ├── ThreadBusyError         new input for a thread that is paused or crashed mid-run
    ├── SerializationError      a value cannot be stored, or a stored value is not allowed back
    ├── EmptyInputError         LangGraph's name, importable; Stepwise never raises it
                                (`invoke(None)` on a new thread starts from the defaults)
    └── NodeError               no longer raised (kept importable): since the third round a
                                node's own exception is raised as itself, with a note naming
                                node, step, thread and checkpoint (as LangGraph does)

Each message says what happened, where (node, step, thread, field) and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class OrchestrationError(Exception):
    """Base class of every error Stepwise's engine raises."""


class GraphValidationError(OrchestrationError, ValueError):
    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the graph has {len(self.problems)} problem(s):\n{lines}")


class InvalidUpdateError(OrchestrationError):
    pass


class ReducerValueError(InvalidUpdateError, ValueError):
    """A field's reducer refused an update with a `ValueError` (e.g. `RemoveMessage` of an id
    the history does not hold). LangGraph raises the reducer's `ValueError` itself, so
    `except ValueError` catches this one too; the message names the field and the writer."""


class EmptyInputError(OrchestrationError):
    """LangGraph's error for a run given no input; importable for LangGraph code. Stepwise
    does not raise it: `invoke(None, config)` on a thread that never ran starts from the
    schema's defaults (docs/langgraph.md)."""


class AmbiguousResumeError(InvalidUpdateError, RuntimeError):
    """`Command(resume=value)` while several interrupts wait: which one `value` answers is
    not known. A `RuntimeError` too, the type LangGraph raises for it."""


class GraphRecursionError(OrchestrationError, RecursionError):
    """A `RecursionError`, as LangGraph's: `except RecursionError` catches both."""


class ParentCommand(OrchestrationError):
    """`Command(graph=Command.PARENT)` on its way from a subgraph's node to the parent graph's
    task that runs the subgraph (`command`: the command, for the parent's graph). Raised to
    the caller only when the graph has no parent, as LangGraph raises it."""

    def __init__(self, command: Any, node: str = "") -> None:
        super().__init__(command)
        self.command = command
        self.node = node

    def __str__(self) -> str:
        origin = f"node {self.node!r}" if self.node else "a node"
        return (
            f"{origin} returned Command(graph=Command.PARENT) ({self.command!r:.200}), but its "
            "graph is not running as a subgraph: there is no parent graph to send it to. "
            "Return it from a graph added to another with add_node(name, compiled_graph), "
            "or drop graph=Command.PARENT to act on this graph."
        )


class CheckpointNotFound(OrchestrationError, LookupError):
    pass


class ThreadBusyError(OrchestrationError):
    pass


class SerializationError(OrchestrationError, ValueError):
    """A value cannot be stored, or a stored value is not allowed back.

    Where it is known: `field` is the state field whose value it is (None for metadata, an
    interrupt's value or a malformed row), `nodes` the node(s) that wrote it in `step`, and
    `node` the first of them. The message says the same in words."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        nodes: Sequence[str] = (),
        step: int | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.nodes = tuple(nodes)
        self.node = self.nodes[0] if self.nodes else None
        self.step = step


class NodeError(OrchestrationError):
    """Kept so `from orchestration import NodeError` still imports; the engine raises a
    node's own exception instead (API.md, third round)."""

    def __init__(self, node: str, step: int, error: BaseException) -> None:
        self.node = node
        self.step = step
        self.error = error
        super().__init__(
            f"node {node!r} failed in step {step}: {type(error).__name__}: {error}"
        )
