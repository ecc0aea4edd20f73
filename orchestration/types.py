"""The small values graphs are built and driven with: START/END, Send, Command, Overwrite,
Interrupt, RetryPolicy and the StateSnapshot returned by `get_state`."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, final

from orchestration.checkpoint import serde
from orchestration.checkpoint.base import CheckpointConfig, CheckpointMetadata

START = "__start__"
END = "__end__"


# LangGraph's tag for a chat model call that `stream_mode="messages"` leaves out.
TAG_NOSTREAM = "nostream"


class StateUpdate(NamedTuple):
    """One update of `bulk_update_state`: `values` as if `as_node` wrote them (LangGraph's;
    `task_id` is accepted and not used: Stepwise's update names no task)."""

    values: dict[str, Any] | None
    as_node: str | None = None
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """Run `node` once with `arg` as its input instead of the state (map-reduce fan-out)."""

    node: str
    arg: Any = None


class _Root:
    """The base `_ToolOutput` starts from; `adopt_tool_output` swaps it for LangChain's
    mixin (Python only lets a class's bases change between classes of the same layout)."""


class _ToolOutput(_Root):
    """What makes a `Command` one of LangChain's `ToolOutputMixin`s once LangChain is loaded
    (`adopt_tool_output`)."""


def adopt_tool_output() -> None:
    """Make `Command` a LangChain `ToolOutputMixin`, as LangGraph's is: a LangChain tool
    called with a tool call returns such a value as it is, where it would turn anything else
    into a `ToolMessage` of its text. A no-op without langchain_core. Called when
    orchestration is imported after langchain_core, and when a `ToolNode` takes a LangChain
    tool: importing langchain_core up front would cost every graph half a second."""
    if _ToolOutput.__bases__ != (_Root,):
        return
    try:
        from langchain_core.messages.tool import ToolOutputMixin
    except ImportError:
        return
    _ToolOutput.__bases__ = (ToolOutputMixin,)


# Not slotted: a slotted class cannot take on the mixin's layout after the fact.
@dataclass(frozen=True)
class Command[N](_ToolOutput):
    """Returned by a node: `update` the state and `goto` other nodes.
    Given as input: `resume` answers pending interrupts (a value, or `{interrupt_id: answer}`).

    `Command[Literal["a", "b"]]` as a node's return annotation tells `compile` where it can go.
    """

    update: Any = None
    goto: str | Send | Sequence[str | Send] = ()
    resume: Any = None
    # `Command.PARENT`: returned by a node of a subgraph, the command is for the parent graph
    # (a hand-off): the subgraph stops there, and the parent's node that ran it takes
    # `update` and `goto` as its own result. Any other value means this graph, as in LangGraph.
    graph: str | None = None

    PARENT: ClassVar[str] = "__parent__"


@final
@dataclass(frozen=True, slots=True)
class Overwrite:
    """An update that sets its field to `value`, bypassing the field's reducer.

    Give it wherever a field's update is given: in a node's return value, in
    `Command(update=...)`, in `invoke` input or in `update_state(config, values)`. A `topic`
    list can be trimmed or replaced with it: `{"log": Overwrite(["only this"])}`.

    Within one superstep, as in LangGraph: two `Overwrite`s of one field raise
    `InvalidUpdateError` naming the field and both nodes; an `Overwrite` wins over the plain
    updates other tasks make to the same field in that superstep, whatever their order
    (they are dropped, not applied on top). A field without a reducer still takes one write
    per superstep, `Overwrite` or not. Checkpoints store the plain `value`.
    """

    value: Any


@dataclass(frozen=True, slots=True)
class Interrupt:
    """A pause asked for by `interrupt(value)` inside `node`; answer it with `Command(resume=)`."""

    id: str
    value: Any
    node: str


# What LangGraph's `default_retry_on` does not retry: errors of the program, not of the moment.
_NOT_RETRIED = (
    ValueError, TypeError, ArithmeticError, ImportError, LookupError, NameError, SyntaxError,
    RuntimeError, ReferenceError, StopIteration, StopAsyncIteration, OSError,
)


def default_retry_on(error: BaseException) -> bool:
    """LangGraph's default `retry_on`, case for case: a `ConnectionError` is retried, an HTTP
    error of httpx or requests when the server answered 5xx, a programming error
    (`ValueError`, `KeyError`, `OSError`, ...) never, anything else is. httpx and requests
    are looked up only if the program imported them (an error of theirs means it did)."""
    if isinstance(error, ConnectionError):
        return True
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(error, httpx.HTTPStatusError):
        return 500 <= error.response.status_code < 600
    requests = sys.modules.get("requests")
    if requests is not None and isinstance(error, requests.HTTPError):
        # LangGraph's test, quirk included: a Response is falsy for any status >= 400, so
        # every requests.HTTPError that carries its response is retried.
        response = error.response
        return 500 <= response.status_code < 600 if response else True
    return not isinstance(error, _NOT_RETRIED) and isinstance(error, Exception)


RetryOn = type[BaseException] | Sequence[type[BaseException]] | Callable[[BaseException], bool]


def default_cache_key(*args: Any, **kwargs: Any) -> bytes:
    """The cache key of a node's input, as LangGraph's default (which pickles it): the input
    encoded by the checkpoint serializer, dicts and sets in sorted order so equal inputs give
    equal keys. An input it cannot encode needs `CachePolicy(key_func=...)`."""
    try:
        return serde.dumps((_frozen(args), _frozen(kwargs)), where="a cached node's input")
    except Exception as error:
        raise TypeError(
            f"{error}; give the node CachePolicy(key_func=...) returning a str or bytes key "
            "built from the parts of its input that matter"
        ) from error


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return [[k, _frozen(v)] for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))]
    if isinstance(value, list | tuple):
        return [_frozen(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_frozen(v) for v in value), key=repr)
    return value


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """`add_node(..., cache_policy=CachePolicy(ttl=...))` (LangGraph's): a task of the node
    whose input's key (`key_func`) the graph's cache holds takes the writes stored there
    instead of running; `ttl` seconds (None: for ever)."""

    key_func: Callable[..., str | bytes] = default_cache_key
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry a failing node in place before the failure reaches the caller; LangGraph's
    `RetryPolicy`, its fields in its order and with its defaults.

    The wait before retry n (n >= 1) is `min(max_interval, initial_interval *
    backoff_factor ** (n - 1))` seconds, plus a random 0-1 s with `jitter`. `retry_on` is an
    exception class, a sequence of them, or a predicate; by default `default_retry_on`.
    `backoff=` (Stepwise's earlier name) sets the first wait, doubled each time, no jitter.
    """

    initial_interval: float = 0.5
    backoff_factor: float = 2.0
    max_interval: float = 128.0
    max_attempts: int = 3
    jitter: bool = True
    retry_on: RetryOn = default_retry_on
    backoff: float | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.backoff is not None:
            if self.backoff < 0:
                raise ValueError(f"RetryPolicy.backoff must not be negative, got {self.backoff}")
            object.__setattr__(self, "initial_interval", self.backoff)
            object.__setattr__(self, "jitter", False)
        if self.max_attempts < 1:
            raise ValueError(
                f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}"
            )
        for name in ("initial_interval", "max_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetryPolicy.{name} must not be negative, got "
                                 f"{getattr(self, name)}")
        retry_on = self.retry_on
        if isinstance(retry_on, type) or callable(retry_on):
            return
        if isinstance(retry_on, Sequence) and not isinstance(retry_on, str) and all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on
        ):
            object.__setattr__(self, "retry_on", tuple(retry_on))
            return
        raise TypeError("RetryPolicy.retry_on must be an exception class, a list or tuple of "
                        f"them, or a callable; got {retry_on!r}")

    def matches(self, error: BaseException) -> bool:
        retry_on = self.retry_on
        if isinstance(retry_on, type | tuple):
            return isinstance(error, retry_on)
        return bool(retry_on(error))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt`, before the next."""
        wait = min(self.max_interval, self.initial_interval * self.backoff_factor ** (attempt - 1))
        return wait + random.uniform(0, 1) if self.jitter else wait


def retry_wait(policies: Sequence[RetryPolicy], error: BaseException, attempt: int
               ) -> float | None:
    """The wait before retrying a node that failed with `error` on attempt `attempt`, under
    the first of its `policies` whose `retry_on` takes the error (as LangGraph picks one);
    None when none does, or that one has no attempt left."""
    for policy in policies:
        if policy.matches(error):
            return policy.delay(attempt) if attempt < policy.max_attempts else None
    return None


@dataclass(frozen=True, slots=True)
class PregelTask:
    """A task a snapshot's checkpoint waits to run (`StateSnapshot.tasks`). `state` is the
    subgraph's own snapshot when the task runs one and `get_state(..., subgraphs=True)` was
    asked (as LangGraph's). Where the step's writes are kept (the latest state; a step that
    paused or failed): `result`, what a task that finished wrote; `error`, how a task that
    failed failed (its repr, as LangGraph stores it); `path`, LangGraph's
    `("__pregel_pull", node)` for a node reached by name, `("__pregel_push", i, False)` for
    the i-th `Send`."""

    id: str
    name: str
    interrupts: tuple[Interrupt, ...] = ()
    state: StateSnapshot | None = None
    path: tuple[Any, ...] = ()
    error: str | None = None
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """A thread's state at one checkpoint, as `get_state` / `get_state_history` return it."""

    values: Any
    next: tuple[str, ...]
    config: CheckpointConfig
    metadata: CheckpointMetadata | None
    created_at: str | None  # ISO 8601, as LangGraph's (the checkpoint's `ts` is a datetime)
    parent_config: CheckpointConfig | None
    interrupts: tuple[Interrupt, ...] = field(default=())
    # filled by get_state(config, subgraphs=True): the pending tasks, with subgraph states
    tasks: tuple[PregelTask, ...] = field(default=())


# A task's update is kept as pending writes when its superstep pauses or fails, and a resumed
# `Command(update=...)` is held the same way: an Overwrite in them must come back as one.
serde.register(Overwrite)

if "langchain_core.messages.tool" in sys.modules:
    adopt_tool_output()
