"""The saver port: what a checkpoint is made of, and the narrow interface every saver implements.

The superstep loop only ever talks to a saver through `BaseCheckpointSaver`; how a saver
stores things (memory, one SQLite file, Django models) never leaks into the loop.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, TypeVar

CheckpointSource = Literal["input", "loop", "update", "fork"]
_T = TypeVar("_T")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CheckpointConfig:
    """Names a thread and, optionally, one checkpoint in it (`None` means the latest).

    `checkpoint_ns` names a subgraph's checkpoints inside the thread: `""` is the root graph,
    `"outer"` the subgraph run as node `outer`, `"outer|inner"` one nested in it. Savers keep
    each namespace's checkpoints apart; `delete_thread` forgets all of them."""

    thread_id: str
    checkpoint_id: str | None = None
    checkpoint_ns: str = ""

    def __post_init__(self) -> None:
        thread_id = self.thread_id
        if type(thread_id) is not str:
            # LangGraph accepts any str, a UUID or an int: stored as its string.
            if isinstance(thread_id, uuid.UUID) or (
                isinstance(thread_id, int) and not isinstance(thread_id, bool)
            ):
                object.__setattr__(self, "thread_id", str(thread_id))
            else:
                raise ValueError(
                    "CheckpointConfig needs a thread_id that is a non-empty string, a UUID or "
                    f"an int, got {type(thread_id).__name__} {thread_id!r:.80}"
                )
        if not thread_id:
            raise ValueError("CheckpointConfig needs a non-empty thread_id, got ''")
        if "\x1f" in self.thread_id:
            raise ValueError(
                f"CheckpointConfig: thread_id {self.thread_id!r} contains the control character "
                "\\x1f, which separates a thread from its subgraph namespaces; use another id"
            )
        if not isinstance(self.checkpoint_ns, str):
            raise ValueError(
                "CheckpointConfig.checkpoint_ns must be a string (a subgraph path such as "
                f"'outer|inner', '' for the root graph), got {self.checkpoint_ns!r}"
            )

    def with_checkpoint_id(self, checkpoint_id: str | None) -> CheckpointConfig:
        return replace(self, checkpoint_id=checkpoint_id)

    # Read as LangGraph's config dict: `cfg["configurable"]["checkpoint_id"]` works.

    @property
    def configurable(self) -> dict[str, Any]:
        out: dict[str, Any] = {"thread_id": self.thread_id, "checkpoint_ns": self.checkpoint_ns}
        if self.checkpoint_id is not None:
            out["checkpoint_id"] = self.checkpoint_id
        return out

    def __getitem__(self, key: str) -> Any:
        if key == "configurable":
            return self.configurable
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.configurable if key == "configurable" else default

    def keys(self) -> tuple[str, ...]:
        return ("configurable",)

    def __contains__(self, key: object) -> bool:
        return key == "configurable"

    def __iter__(self) -> Iterator[str]:
        return iter(("configurable",))

    def __len__(self) -> int:
        return 1

    def items(self) -> tuple[tuple[str, dict[str, Any]]]:
        return (("configurable", self.configurable),)

    def __or__(self, other: object) -> dict[str, Any]:
        """`config | {"recursion_limit": 5}`, as on LangGraph's config dict: a new dict."""
        if not isinstance(other, Mapping):
            return NotImplemented
        return {"configurable": self.configurable, **other}

    def __ror__(self, other: object) -> dict[str, Any]:
        if not isinstance(other, Mapping):
            return NotImplemented
        return {**other, "configurable": self.configurable}


def as_checkpoint_config(config: Any, what: str = "config") -> CheckpointConfig:
    """A `CheckpointConfig`, or a LangGraph config dict naming the same thread/checkpoint;
    taken wherever a config is (the engine, the savers)."""
    if isinstance(config, CheckpointConfig):
        return config
    if isinstance(config, Mapping):
        configurable = config.get("configurable")
        if not isinstance(configurable, Mapping) or configurable.get("thread_id") is None:
            raise ValueError(
                f"{what} {dict(config)!r:.200} names no thread: pass "
                '{"configurable": {"thread_id": "<thread id>"}} or CheckpointConfig("<thread id>")'
            )
        return CheckpointConfig(
            configurable["thread_id"],
            configurable.get("checkpoint_id"),
            configurable.get("checkpoint_ns") or "",
        )
    raise TypeError(
        f"{what} must be a CheckpointConfig(thread_id) or a dict "
        f'{{"configurable": {{"thread_id": ...}}}}, got {type(config).__name__} {config!r:.80}'
    )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A snapshot of a thread's state between two supersteps.

    `values` is a plain dict of the schema's field values. `versions` maps each field to the
    id of the checkpoint that last changed it: a field whose version equals its parent's did not
    change, so a saver never needs to store it again. `internal` is engine bookkeeping that is
    not user state (queued `Send` tasks, join barriers, interrupt counters); savers store it
    as one opaque serialized value.
    """

    id: str
    ts: datetime
    values: Mapping[str, Any]
    versions: Mapping[str, str] = _EMPTY
    next: tuple[str, ...] = ()
    internal: Mapping[str, Any] = _EMPTY

    # Read as LangGraph's checkpoint dict, for code that reads a saver's tuples:
    # `checkpoint["channel_values"]` (the values), `["channel_versions"]`, `["id"]`, and
    # `["ts"]` as the ISO string LangGraph stores.

    def __getitem__(self, key: str) -> Any:
        if key == "channel_values":
            return self.values
        if key == "channel_versions":
            return self.versions
        if key == "id":
            return self.id
        if key == "ts":
            return self.ts.isoformat()
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> tuple[str, ...]:
        return _CHECKPOINT_KEYS


_CHECKPOINT_KEYS = ("id", "ts", "channel_values", "channel_versions")


@dataclass(frozen=True, slots=True)
class CheckpointMetadata:
    """Why a checkpoint exists: `source` and `step`, what each node wrote, and free-form `extra`."""

    source: CheckpointSource
    step: int
    writes: Mapping[str, Any] = _EMPTY
    extra: Mapping[str, Any] = _EMPTY

    # Read as LangGraph's metadata dict: `metadata["source"]`, `metadata.get("writes")`; a
    # key of `extra` reads as a top-level key, as LangGraph merges it there.

    def __getitem__(self, key: str) -> Any:
        if key in _METADATA_KEYS:
            return getattr(self, key)
        return self.extra[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in _METADATA_KEYS or key in self.extra

    def keys(self) -> list[str]:
        return [*_METADATA_KEYS, *(k for k in self.extra if k not in _METADATA_KEYS)]

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self.keys()]


_METADATA_KEYS = ("source", "step", "writes")


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """A write a task produced that is not yet part of a committed superstep."""

    task_id: str
    channel: str
    value: Any


@dataclass(frozen=True, slots=True)
class CheckpointTuple:
    config: CheckpointConfig
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    parent_config: CheckpointConfig | None = None
    pending_writes: tuple[PendingWrite, ...] = field(default=())


# One checkpoint as `get_state_history` shows it (`BaseCheckpointSaver.list_history`):
# (values, next, config, metadata, ts, parent_config, pending). `values` is a dict of field
# values the caller owns (no other entry or saver holds it); `pending` is the whole tuple when
# the checkpoint has pending writes (its interrupts are read from them), else None.
HistoryEntry = tuple[
    dict[str, Any], tuple[str, ...], CheckpointConfig, CheckpointMetadata, datetime,
    CheckpointConfig | None, CheckpointTuple | None,
]


def history_entry(tup: CheckpointTuple) -> HistoryEntry:
    """The history entry of a tuple (its values copied: the tuple keeps its own)."""
    checkpoint = tup.checkpoint
    return (
        dict(checkpoint.values), tuple(checkpoint.next), tup.config, tup.metadata,
        checkpoint.ts, tup.parent_config, tup if tup.pending_writes else None,
    )


# Filter keys end up in SQL in some savers (as JSON paths); only plain identifiers are accepted,
# which closes the hole LangGraph's SQLite saver had through filter keys (CVE-2025-67644).
_FILTER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def validate_filter(filter: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Check `list(filter=...)` keys once, for every saver. Returns the filter (or `{}`)."""
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise TypeError(f"filter must be a mapping of metadata keys to values, got {filter!r}")
    for key in filter:
        if not isinstance(key, str) or not _FILTER_KEY.match(key):
            raise ValueError(
                f"invalid filter key {key!r}: keys are metadata names made of letters, digits "
                "and underscores ('source', 'step' or a key of metadata.extra)"
            )
    return filter


def metadata_matches(metadata: CheckpointMetadata, filter: Mapping[str, Any]) -> bool:
    """The reference meaning of `filter`: `source`, `step`, else a key of `metadata.extra`,
    each equal to the filter's value (`_same_value`). Savers push what SQL can compare the
    same way into SQL (`filters.split_filter`) and check the rest with this function."""
    for key, wanted in filter.items():
        if key == "source":
            actual: Any = metadata.source
        elif key == "step":
            actual = metadata.step
        elif key in metadata.extra:
            actual = metadata.extra[key]
        else:
            return False
        if not _same_value(actual, wanted):
            return False
    return True


def _same_value(actual: Any, wanted: Any) -> bool:
    """Equality as JSON has it, which is what savers compare in SQL: a bool matches only a
    bool (Python's `True == 1` does not hold in JSON); numbers match by value (`1 == 1.0`)."""
    if type(actual) is bool or type(wanted) is bool:
        return type(actual) is type(wanted) and actual == wanted
    return bool(actual == wanted)


class _IdClock:
    """Checkpoint ids: 16 hex digits of nanoseconds (strictly increasing in this process) then
    8 hex digits drawn once per process, so ids sort by creation time and two processes never
    collide. The suffix is drawn again in a forked child, which would otherwise share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self._suffix = os.urandom(4).hex()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._lock = threading.Lock()
        self._suffix = os.urandom(4).hex()

    def next_id(self) -> str:
        with self._lock:
            now = time.time_ns()
            if now <= self._last:
                now = self._last + 1
            self._last = now
        return f"{now:016x}{self._suffix}"


_clock = _IdClock()


def new_checkpoint_id() -> str:
    return _clock.next_id()


class BaseCheckpointSaver(ABC):
    """The port. Savers implement the five sync methods; the async twins run them off the loop.

    Contract (checked by `tests/checkpoint/test_conformance.py` for every saver):

    - `get_tuple(config)`: the checkpoint `config.checkpoint_id` names, or the thread's latest
      when it is `None`; `None` if there is none. Pending writes come back in write order.
    - `list(config, limit, before=, filter=)`: the thread's checkpoints, **oldest first**.
      `before` (a config naming a checkpoint) keeps those created before it; `limit` keeps the
      `limit` newest of what is left (still returned oldest first); `filter` matches metadata
      (`source`, `step`, or a key of `metadata.extra`). `config=None`: every thread's
      (`list_all`, for a saver that implements `thread_configs`).
    - `put(config, checkpoint, metadata)`: store it; `config.checkpoint_id` is its parent
      (`None` for a thread's first). Returns the config naming the stored checkpoint.
    - `put_writes(config, writes, task_id)`: attach pending writes to `config.checkpoint_id`.
      Writing the same task's writes twice replaces them (a retried task never duplicates).
      `put_writes_deferred` (same arguments) may write them with the next write or `flush`.
    - `delete_thread(thread_id)`: forget the thread, its checkpoints and writes.
    """

    @abstractmethod
    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None: ...

    @abstractmethod
    def list(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> builtins.list[CheckpointTuple]: ...

    @abstractmethod
    def put(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig: ...

    @abstractmethod
    def put_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None: ...

    @abstractmethod
    def delete_thread(self, thread_id: str) -> None: ...

    def thread_configs(self) -> builtins.list[CheckpointConfig]:
        """Every (thread, namespace) holding checkpoints, as configs without a checkpoint id:
        what `list(None, ...)` reads. A saver that can enumerate its threads overrides it."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot list the checkpoints of every thread: give "
            "list() a config naming one thread"
        )

    def list_all(
        self,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> builtins.list[CheckpointTuple]:
        """`list(None, ...)`, as LangGraph's: the checkpoints of every thread and namespace
        that match `filter`, thread after thread (each oldest first), the first `limit` of
        them. `before` names a checkpoint of one thread: only those created before it."""
        found: builtins.list[CheckpointTuple] = []
        for config in self.thread_configs():
            if limit is not None and len(found) >= limit:
                break
            found += self.list(config, before=before, filter=filter)
        return found if limit is None else found[: max(limit, 0)]

    def get(self, config: CheckpointConfig) -> Checkpoint | None:
        """The checkpoint of `get_tuple(config)`, as LangGraph's saver `get` returns it."""
        tup = self.get_tuple(config)
        return tup.checkpoint if tup is not None else None

    def list_history(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> builtins.list[HistoryEntry]:
        """`list` (same arguments, same checkpoints, oldest first) cut to what
        `get_state_history` makes of each: a `HistoryEntry`. Default: from `list`. A saver
        that builds its tuples itself may build these directly: a history of hundreds of
        checkpoints then makes no `Checkpoint` or `CheckpointTuple` it would throw away."""
        tuples = self.list(config, limit, before=before, filter=filter)
        return [history_entry(t) for t in tuples]

    def put_writes_deferred(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        """`put_writes` for writes the run's caller still holds and gives again if they are
        lost: the answers (and update) of a `Command(resume=...)`. A saver may keep them and
        write them in the same transaction as its next write (the resumed superstep's
        checkpoint: one commit instead of two), or at `flush`, before any read. A crash in
        between loses them with that superstep: the thread still waits at its interrupt, and
        the command delivered again resumes it. Default: `put_writes` at once."""
        self.put_writes(config, writes, task_id)

    def flush(self) -> None:
        """Return once every put this saver accepted is committed (it survives this process
        dying), raising a failed write's error. The engine calls it at the end of a run. A
        saver that writes before `put` returns has nothing to do."""
        return  # noqa: B027 - optional hook, deliberately not abstract

    def flush_durable(self) -> None:
        """`flush`, and what it committed survives a crash of the database server too. The
        engine calls it before a node declared with side effects runs: the world is never
        acted on for a superstep a crash could still lose. Default: `flush` (a saver whose
        commits wait for the disk has nothing more to do)."""
        self.flush()

    async def aflush(self) -> None:
        if type(self).flush is not BaseCheckpointSaver.flush:
            await self._offload(self.flush)

    async def aflush_durable(self) -> None:
        if type(self).flush_durable is BaseCheckpointSaver.flush_durable:
            await self.aflush()
        else:
            await self._offload(self.flush_durable)

    # Async twins: one implementation, run off the event loop by `_offload`, so the loop never
    # blocks on I/O. A saver whose storage cares which thread runs it overrides `_offload` alone.

    async def _offload(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def aget_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        return await self._offload(self.get_tuple, config)

    async def aget(self, config: CheckpointConfig) -> Checkpoint | None:
        tup = await self.aget_tuple(config)
        return tup.checkpoint if tup is not None else None

    async def alist(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> builtins.list[CheckpointTuple]:
        return await self._offload(self.list, config, limit, before=before, filter=filter)

    async def alist_history(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> builtins.list[HistoryEntry]:
        return await self._offload(self.list_history, config, limit, before=before, filter=filter)

    async def aput(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        return await self._offload(self.put, config, checkpoint, metadata)

    async def aput_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        await self._offload(self.put_writes, config, writes, task_id)

    async def aput_writes_deferred(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        await self._offload(self.put_writes_deferred, config, writes, task_id)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._offload(self.delete_thread, thread_id)
