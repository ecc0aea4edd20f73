"""Every error the engine raises, in one tree.

    OrchestrationError
    ├── GraphValidationError    compile() found problems; `.problems` lists all of them
    ├── InvalidUpdateError      a node returned something the schema or reducers refuse
    ├── GraphRecursionError     more supersteps than `recursion_limit`; the thread is resumable
    ├── CheckpointNotFound      a config names a checkpoint that does not exist
    ├── ThreadBusyError         new input for a thread that is paused or crashed mid-run
    ├── SerializationError      a value cannot be stored, or a stored value is not allowed back
    └── NodeError               no longer raised (kept importable): since the third round a
                                node's own exception is raised as itself, with a note naming
                                node, step, thread and checkpoint (as LangGraph does)

Each message says what happened, where (node, step, thread, field) and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence


class OrchestrationError(Exception):
    """Base class of every error Stepwise's engine raises."""


class GraphValidationError(OrchestrationError):
    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the graph has {len(self.problems)} problem(s):\n{lines}")


class InvalidUpdateError(OrchestrationError):
    pass


class GraphRecursionError(OrchestrationError):
    pass


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
