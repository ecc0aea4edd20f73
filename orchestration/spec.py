"""The compiled graph's types: what `StateGraph.compile()` produces and the superstep machine
(`orchestration.pregel`) reads. Imports nothing above it, so every layer can depend on it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from orchestration.errors import InvalidUpdateError
from orchestration.types import CachePolicy, RetryPolicy, Send

if TYPE_CHECKING:
    from orchestration.state import Schema

# A node whose return annotation is a bare `Command` (or a router without a path map) may go
# to any node: validation then assumes it reaches everything, END included.
ANYWHERE: Literal["*"] = "*"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    fn: Callable[[Any], Any]
    is_async: bool
    # The node's retry policies, the first whose `retry_on` takes an error applies; () none.
    retry: tuple[RetryPolicy, ...]
    # Where a returned Command may go, read from `-> Command[Literal[...]]`; () if it returns none.
    goto_targets: tuple[str, ...] | Literal["*"] = ()
    # The node acts on the world outside the graph (pays, mails, calls an API): running it
    # again on a branch repeats that. Tools warn before a fork re-runs it; the node should
    # pass `task_key()` to the outside system so a replay is recognised there.
    side_effects: bool = False
    # LangGraph's `defer=True`: the node runs only when nothing else is pending in the run.
    defer: bool = False
    # The function declares a `config` parameter: it is called as fn(state, config).
    wants_config: bool = False
    # What `get_graph()` shows beside the node's name: `add_node(..., metadata=...)`, and a
    # ToolNode's tools (`__tools`), as LangGraph's drawing does.
    drawn: Mapping[str, Any] | None = None
    # `add_node(..., cache_policy=...)`: its tasks are answered from the graph's cache
    cache_policy: CachePolicy | None = None


@dataclass(frozen=True, slots=True)
class Branch:
    """A conditional edge: `router(state)` picks the next node(s) after `source`.

    An `async def` router is awaited under `ainvoke`/`astream`; under `invoke`/`stream` it runs
    to completion on a private event loop, as async nodes do (see drivers.py)."""

    source: str
    router: Callable[[Any], Any]
    path_map: Mapping[Hashable, str] | None
    is_async: bool = False
    # Without a path map: the names a `-> Literal[...]` return annotation of the router
    # declares, as LangGraph reads them (for drawing and checking; routing is unchanged).
    declared: tuple[str, ...] | None = None

    def targets(self) -> tuple[str, ...] | Literal["*"]:
        if self.path_map is not None:
            return tuple(self.path_map.values())
        return ANYWHERE if self.declared is None else self.declared

    def route(self, state: Any) -> list[str | Send]:
        """Call a sync router and map its answer."""
        result = self.router(state)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise TypeError(
                f"the router after {self.source!r} returned an awaitable but is not declared "
                "`async def`; declare it with `async def` so the engine awaits it"
            )
        return self.choose(result)

    def choose(self, result: Any) -> list[str | Send]:
        """Map a router's answer (a name, END, Send, or a list of them) through `path_map`."""
        chosen = result if isinstance(result, list | tuple) else [result]
        if self.path_map is None:
            return list(chosen)
        out: list[str | Send] = []
        for item in chosen:
            if isinstance(item, Send):
                out.append(item)
            elif item in self.path_map:
                out.append(self.path_map[item])
            else:
                raise InvalidUpdateError(
                    f"the router after {self.source!r} returned {item!r}, which is not a key of "
                    f"its path_map {sorted(map(str, self.path_map))}"
                )
        return out


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """The validated, immutable shape of a graph, shared by every compiled copy."""

    schema: Schema
    nodes: Mapping[str, NodeSpec]
    edges: Mapping[str, tuple[str, ...]]
    branches: Mapping[str, tuple[Branch, ...]]
    joins: tuple[tuple[tuple[str, ...], str], ...]
    joins_by_source: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # Sources with an `async def` router: the loop asks its driver to await those first.
    async_router_sources: frozenset[str] = frozenset()
    # node (or START) -> where it always goes next (END dropped), for those with only plain
    # edges (no router, no join): the loop plans their supersteps from this table alone.
    static_routes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Nodes added with `defer=True` (see plan.hold_deferred); empty in most graphs.
    deferred: frozenset[str] = frozenset()
    # `StateGraph(State, input_schema=Input)`: the fields a caller may give at the start;
    # `None`: every state field (see `state.start_updates`).
    input: Schema | None = None
    # `StateGraph(State, output_schema=Output)`: the fields `invoke` returns; `None`: all.
    output: Schema | None = None
    # node -> the schema of what it reads, for nodes that read less than the state: those
    # typed with (or given `input_schema=`) another schema, and, when such schemas add
    # private fields, every node (a state-typed node does not see them). Empty in most graphs.
    reads: Mapping[str, Schema] = field(default_factory=dict)
    # `StateGraph(State, context_schema=Ctx)`: a dict given as `invoke(..., context=)` is
    # made a `Ctx` when it is a dataclass or a pydantic model (`context.coerce_context`)
    context_schema: Any = None

    def node_input(self, node: str, state: Any, values: Mapping[str, Any]) -> Any:
        """What `node` is called with, given the state and its field values."""
        reads = self.reads.get(node)
        return state if reads is None else reads.read(values)

    @property
    def input_fields(self) -> frozenset[str]:
        if self.input is not None:
            return frozenset(self.input.fields)
        return frozenset(self.schema.fields) - self.schema.private

    @property
    def output_fields(self) -> frozenset[str]:
        return frozenset((self.output or self.schema).fields)

