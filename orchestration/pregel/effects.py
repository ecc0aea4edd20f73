"""The requests the loop makes of its driver (read or store a checkpoint, run tasks, await async
routers, emit a stream chunk), plus the few core helpers that only make such requests.

The loop is a generator: it yields one of these values and gets the answer back, so the same
loop serves the blocking driver (`invoke`) and the asyncio one (`ainvoke`); see drivers.py.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from orchestration.checkpoint.base import Checkpoint, CheckpointConfig, CheckpointMetadata
from orchestration.errors import SerializationError
from orchestration.pregel.plan import Routed, Task, router_failed

if TYPE_CHECKING:
    from orchestration.cache import BaseCache
    from orchestration.context import RunContext
    from orchestration.spec import Branch, GraphSpec

StreamMode = Literal["updates", "values", "custom", "checkpoints", "tasks", "debug"]


# The loop's requests are built several times per superstep and never outlive the request, so
# they are plain slotted dataclasses: a frozen one's __init__ costs ~0.5 µs more per instance.


@dataclass(slots=True)
class RunSettings:
    """What one `invoke`/`stream` call runs with."""

    spec: GraphSpec
    thread_id: str
    interrupt_before: frozenset[str]
    interrupt_after: frozenset[str]
    modes: frozenset[str]
    extra: Mapping[str, Any]
    recursion_limit: int
    # the saver, namespace, store and stream sink the nodes see (`orchestration.context`)
    context: RunContext | None = None
    # start a new chain in the namespace whatever its latest checkpoint (a subgraph's run)
    fresh: bool = False
    # `stream(output_keys=...)`: the fields the `values` and `updates` chunks show (one
    # name: that field's value alone); None: every field
    output_keys: str | tuple[str, ...] | None = None
    # `compile(cache=...)`: where nodes with a cache policy find earlier writes
    cache: BaseCache | None = None

    @property
    def checkpoint_ns(self) -> str:
        return self.context.checkpoint_ns if self.context is not None else ""


@dataclass(slots=True)
class Get:
    config: CheckpointConfig


@dataclass(slots=True)
class Put:
    config: CheckpointConfig
    checkpoint: Checkpoint
    metadata: CheckpointMetadata


@dataclass(slots=True)
class PutWrites:
    config: CheckpointConfig
    writes: list[tuple[str, Any]]
    task_id: str
    # What the caller of the run still holds and gives again if the writes are lost (the
    # answers and update of a `Command(resume=...)`): the saver may write them with its next
    # write, in the same transaction (`BaseCheckpointSaver.put_writes_deferred`).
    deferrable: bool = False


@dataclass(slots=True)
class Execute:
    spec: GraphSpec
    work: list[tuple[Task, Any, list[Any]]]  # task, its input, resume answers so far
    # where the tasks run, for `task_key()`: the thread and the superstep number
    thread_id: str = ""
    step: int = 0
    context: RunContext | None = None
    edits: int = 0  # the line's edits so far (plan.edits_of), which `task_key()` discounts


@dataclass(slots=True)
class Route:
    """Await async routers; the answer is one result (or the exception raised) per call."""

    calls: list[tuple[Branch, Any]]  # router, the state it routes on


@dataclass(slots=True)
class Emit:
    mode: str
    chunk: Any


Effect = Get | Put | PutWrites | Execute | Route | Emit
Core = Generator[Effect, Any, Any]


def resolve_routes(spec: GraphSpec, nodes: Sequence[str], state: Any, step: int) -> Core:
    """Ask the driver to run the async routers after `nodes`; {} (no request) when none is."""
    if not spec.async_router_sources or spec.async_router_sources.isdisjoint(nodes):
        return {}
    keys: list[tuple[str, int]] = []
    calls: list[tuple[Branch, Any]] = []
    for node in dict.fromkeys(nodes):
        for index, branch in enumerate(spec.branches.get(node, ())):
            if branch.is_async:
                keys.append((node, index))
                calls.append((branch, state))
    answers: list[Any] = yield Route(calls)
    routed: dict[tuple[str, int], Any] = {}
    for (node, index), answer in zip(keys, answers, strict=True):
        if isinstance(answer, BaseException):
            raise router_failed(answer, node, step) from None
        routed[(node, index)] = answer
    return routed


def put_checkpoint(
    parent: CheckpointConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    writers: Mapping[str, Sequence[str]],
) -> Core:
    """Store a checkpoint; a SerializationError gets the writing node(s) added to its message."""
    try:
        return (yield Put(parent, checkpoint, metadata))
    except SerializationError as error:
        raise unsaved_checkpoint(error, metadata, writers) from error


def unsaved_checkpoint(
    error: SerializationError,
    metadata: CheckpointMetadata,
    writers: Mapping[str, Sequence[str]],
) -> SerializationError:
    """`error` (a checkpoint the saver could not store) restated with the node(s) that wrote
    the offending field and what to do next."""
    field_name = error.field
    culprits = sorted(set(writers.get(field_name, ()))) if field_name else []
    where = (
        f"field {field_name!r} was written by {culprits} in step {metadata.step}"
        if culprits
        else f"step {metadata.step} wrote {sorted(writers)}"
    )
    return SerializationError(
        f"{error} ({where}). Nothing was saved for this step and the thread is unchanged: "
        "make the node return storable values (or register the type with "
        "orchestration.checkpoint.serde.register) and run the thread again.",
        field=field_name,
        nodes=culprits,
        step=metadata.step,
    )


__all__ = [
    "Core",
    "Effect",
    "Emit",
    "Execute",
    "Get",
    "Put",
    "PutWrites",
    "Route",
    "Routed",
    "RunSettings",
    "StreamMode",
    "put_checkpoint",
    "resolve_routes",
    "unsaved_checkpoint",
]
