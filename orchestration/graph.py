"""`StateGraph`: build a graph of nodes and edges, then `compile()` it (validating every problem
at once) into a `CompiledGraph` that runs it."""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, Literal

from orchestration.checkpoint.base import BaseCheckpointSaver, CheckpointConfig, CheckpointTuple
from orchestration.drivers import adrive, drive, run_blocking
from orchestration.effects import Core, RunSettings, StreamMode
from orchestration.entry import not_found_message, update_core
from orchestration.errors import CheckpointNotFound, GraphValidationError, InvalidUpdateError
from orchestration.loop import run_core
from orchestration.plan import NO_SAVER_THREAD, interrupts_of
from orchestration.state import Schema, register_with_serializer
from orchestration.types import END, START, Command, RetryPolicy, Send, StateSnapshot

# `_snapshot` fills a StateSnapshot's slots directly, in this order: every field, or it fails
# here (import time) rather than leaving a field unset.
_SNAPSHOT_FIELDS = (
    "values", "next", "config", "metadata", "created_at", "parent_config", "interrupts"
)
if tuple(f.name for f in dataclass_fields(StateSnapshot)) != _SNAPSHOT_FIELDS:
    raise TypeError("StateSnapshot's fields changed: update _SNAPSHOT_FIELDS and _snapshot")
_new_object = object.__new__
_SNAPSHOT_SLOTS = tuple(StateSnapshot.__dict__[name].__set__ for name in _SNAPSHOT_FIELDS)

# A node whose return annotation is a bare `Command` (or a router without a path map) may go
# to any node: validation then assumes it reaches everything, END included.
ANYWHERE: Literal["*"] = "*"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    fn: Callable[[Any], Any]
    is_async: bool
    retry: RetryPolicy | None
    # Where a returned Command may go, read from `-> Command[Literal[...]]`; () if it returns none.
    goto_targets: tuple[str, ...] | Literal["*"] = ()


@dataclass(frozen=True, slots=True)
class Branch:
    """A conditional edge: `router(state)` picks the next node(s) after `source`.

    An `async def` router is awaited under `ainvoke`/`astream`; under `invoke`/`stream` it runs
    to completion on a private event loop, as async nodes do (see drivers.py)."""

    source: str
    router: Callable[[Any], Any]
    path_map: Mapping[Hashable, str] | None
    is_async: bool = False

    def targets(self) -> tuple[str, ...] | Literal["*"]:
        return ANYWHERE if self.path_map is None else tuple(self.path_map.values())

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


def _command_targets(fn: Callable[..., Any]) -> tuple[str, ...] | Literal["*"]:
    """Read `-> Command[Literal["a", "b"]]`; a bare `-> Command` may go anywhere."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable hints: we cannot know, so assume no Command
        return ()
    annotation = hints.get("return")
    found: list[str] = []
    anywhere = False

    def walk(hint: Any) -> None:
        nonlocal anywhere
        if hint is Command:
            anywhere = True
            return
        origin = typing.get_origin(hint)
        if origin is Command:
            for arg in typing.get_args(hint):
                if typing.get_origin(arg) is Literal:
                    found.extend(str(a) for a in typing.get_args(arg))
                else:
                    anywhere = True
            return
        for arg in typing.get_args(hint):
            walk(arg)

    walk(annotation)
    return ANYWHERE if anywhere else tuple(found)


def _is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects count too
    )


class StateGraph:
    """Builder: add nodes and edges, then `compile()`. Every method returns the graph."""

    def __init__(self, schema: type[Any]) -> None:
        self.schema = Schema(schema)
        register_with_serializer(self.schema.user_types())
        self._nodes: dict[str, NodeSpec] = {}
        self._edges: list[tuple[str, str]] = []
        self._joins: list[tuple[tuple[str, ...], str]] = []
        self._branches: list[Branch] = []
        # Naming problems found while building are reported by compile(), all together.
        self._problems: list[str] = []

    def add_node(
        self, name: str, fn: Callable[[Any], Any], *, retry: RetryPolicy | None = None
    ) -> StateGraph:
        if not isinstance(name, str) or not name:
            self._problems.append(f"node name {name!r} is empty or not a string")
            return self
        if name in (START, END) or name.startswith("__"):
            self._problems.append(
                f"node name {name!r} is reserved (START, END and names starting with '__')"
            )
            return self
        if name in self._nodes:
            self._problems.append(f"node {name!r} is added twice")
            return self
        if not callable(fn):
            self._problems.append(f"node {name!r}: {fn!r} is not callable")
            return self
        self._nodes[name] = NodeSpec(name, fn, _is_async_callable(fn), retry, _command_targets(fn))
        return self

    def add_edge(self, source: str | Sequence[str], target: str) -> StateGraph:
        if isinstance(source, str):
            self._edges.append((source, target))
        elif len(source) == 1:
            self._edges.append((source[0], target))
        else:
            self._joins.append((tuple(source), target))
        return self

    def set_entry_point(self, name: str) -> StateGraph:
        return self.add_edge(START, name)

    def set_finish_point(self, name: str) -> StateGraph:
        return self.add_edge(name, END)

    def add_conditional_edges(
        self,
        source: str,
        router: Callable[[Any], Any],
        path_map: Mapping[Hashable, str] | Iterable[str] | None = None,
    ) -> StateGraph:
        mapping: Mapping[Hashable, str] | None
        if path_map is None or isinstance(path_map, Mapping):
            mapping = path_map
        else:
            mapping = {name: name for name in path_map}
        self._branches.append(Branch(source, router, mapping, _is_async_callable(router)))
        return self

    def set_conditional_entry_point(
        self, router: Callable[[Any], Any], path_map: Mapping[Hashable, str] | None = None
    ) -> StateGraph:
        return self.add_conditional_edges(START, router, path_map)

    def compile(
        self,
        *,
        checkpointer: BaseCheckpointSaver | None = None,
        interrupt_before: Sequence[str] = (),
        interrupt_after: Sequence[str] = (),
    ) -> CompiledGraph:
        problems = [*self._problems, *self._validate(interrupt_before, interrupt_after)]
        if problems:
            raise GraphValidationError(problems)
        edges: dict[str, tuple[str, ...]] = {}
        for source, target in self._edges:
            if target not in edges.get(source, ()):
                edges[source] = (*edges.get(source, ()), target)
        branches: dict[str, tuple[Branch, ...]] = {}
        for branch in self._branches:
            branches[branch.source] = (*branches.get(branch.source, ()), branch)
        joins_by_source: dict[str, tuple[int, ...]] = {}
        for index, (sources, _) in enumerate(self._joins):
            for source in sources:
                joins_by_source[source] = (*joins_by_source.get(source, ()), index)
        spec = GraphSpec(
            self.schema,
            dict(self._nodes),
            edges,
            branches,
            tuple(self._joins),
            joins_by_source,
            frozenset(b.source for b in self._branches if b.is_async),
            {
                name: tuple(t for t in edges.get(name, ()) if t != END)
                for name in (START, *self._nodes)
                if name not in branches and name not in joins_by_source
            },
        )
        return CompiledGraph(
            spec,
            checkpointer,
            interrupt_before=frozenset(interrupt_before),
            interrupt_after=frozenset(interrupt_after),
        )

    # -- validation --------------------------------------------------------------------------

    def _validate(self, before: Sequence[str], after: Sequence[str]) -> list[str]:
        problems: list[str] = []
        known = set(self._nodes)

        def check_source(source: str, what: str) -> None:
            if source == END:
                problems.append(f"{what} starts at END; nothing runs after END")
            elif source != START and source not in known:
                problems.append(f"{what} starts at unknown node {source!r}")

        def check_target(target: str, what: str) -> None:
            if target == START:
                problems.append(f"{what} goes to START; use set_entry_point for the first node")
            elif target != END and target not in known:
                problems.append(f"{what} goes to unknown node {target!r}")

        for source, target in self._edges:
            what = f"edge {source!r} -> {target!r}"
            check_source(source, what)
            check_target(target, what)
        for sources, target in self._joins:
            what = f"join {list(sources)!r} -> {target!r}"
            for source in sources:
                if source == START:
                    problems.append(f"{what} waits for START, which always runs; drop it")
                else:
                    check_source(source, what)
            check_target(target, what)
        for branch in self._branches:
            what = f"conditional edge from {branch.source!r}"
            check_source(branch.source, what)
            targets = branch.targets()
            if targets != ANYWHERE:
                for target in targets:
                    check_target(target, what)
        for node in self._nodes.values():
            if node.goto_targets != ANYWHERE:
                for target in node.goto_targets:
                    check_target(target, f"node {node.name!r}'s Command annotation")
        for label, names in (("interrupt_before", before), ("interrupt_after", after)):
            for name in names:
                if name not in known:
                    problems.append(f"{label} names unknown node {name!r}")
        if not any(s == START for s, _ in self._edges) and not any(
            b.source == START for b in self._branches
        ):
            problems.append(
                "the graph has no entry point: call set_entry_point(name) or add_edge(START, name)"
            )
        problems.extend(self._flow_problems())
        return problems

    def _successors(self) -> dict[str, set[str]]:
        """node (or START) -> where it can lead; ANYWHERE stands for every node and END."""
        succ: dict[str, set[str]] = {name: set() for name in (START, *self._nodes)}
        for source, target in self._edges:
            succ.setdefault(source, set()).add(target)
        for sources, target in self._joins:
            for source in sources:
                succ.setdefault(source, set()).add(target)
        for branch in self._branches:
            targets = branch.targets()
            succ.setdefault(branch.source, set()).update(
                {ANYWHERE} if targets == ANYWHERE else set(targets)
            )
        for node in self._nodes.values():
            goto = node.goto_targets
            succ[node.name].update({ANYWHERE} if goto == ANYWHERE else set(goto))
        return succ

    def _flow_problems(self) -> list[str]:
        succ = self._successors()
        everything = set(self._nodes) | {END}
        reachable: set[str] = set()
        frontier = [START]
        while frontier:
            current = frontier.pop()
            for target in succ.get(current, ()):
                for name in everything if target == ANYWHERE else {target}:
                    if name not in reachable:
                        reachable.add(name)
                        frontier.append(name)
        problems = [
            f"node {name!r} is unreachable: no edge from START leads to it"
            for name in self._nodes
            if name not in reachable
        ]
        finishes: set[str] = {END}
        changed = True
        while changed:
            changed = False
            for name in self._nodes:
                if name not in finishes and (succ[name] & (finishes | {ANYWHERE})):
                    finishes.add(name)
                    changed = True
        for name in self._nodes:
            if not succ[name]:
                problems.append(
                    f"node {name!r} is a dead end: it has no outgoing edge; add "
                    f"add_edge({name!r}, END) or set_finish_point({name!r})"
                )
            elif name not in finishes:
                problems.append(f"node {name!r} has no path to END: every route from it loops")
        return problems


def _as_config(
    config: CheckpointConfig | None, saver: BaseCheckpointSaver | None
) -> CheckpointConfig:
    if config is not None:
        if not isinstance(config, CheckpointConfig):
            raise TypeError(
                f"config must be a CheckpointConfig(thread_id), got {type(config).__name__}"
            )
        return config
    if saver is not None:
        raise ValueError(
            "this graph has a checkpoint saver, so every call needs a thread: pass "
            "config=CheckpointConfig('<thread id>')"
        )
    return CheckpointConfig(NO_SAVER_THREAD)


class CompiledGraph:
    """A validated graph, optionally bound to a checkpoint saver. Immutable: binding another
    saver returns a new compiled graph."""

    def __init__(
        self,
        spec: GraphSpec,
        saver: BaseCheckpointSaver | None = None,
        *,
        interrupt_before: frozenset[str] = frozenset(),
        interrupt_after: frozenset[str] = frozenset(),
    ) -> None:
        self.spec = spec
        self.saver = saver
        self.interrupt_before = interrupt_before
        self.interrupt_after = interrupt_after

    @property
    def checkpointer(self) -> BaseCheckpointSaver | None:
        return self.saver

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self.spec.nodes)

    def with_checkpoint_saver(self, saver: BaseCheckpointSaver | None) -> CompiledGraph:
        return CompiledGraph(
            self.spec,
            saver,
            interrupt_before=self.interrupt_before,
            interrupt_after=self.interrupt_after,
        )

    def _settings(
        self,
        config: CheckpointConfig,
        modes: frozenset[str],
        extra: Mapping[str, Any] | None,
        recursion_limit: int,
    ) -> RunSettings:
        return RunSettings(
            self.spec,
            config.thread_id,
            self.interrupt_before,
            self.interrupt_after,
            modes,
            dict(extra) if extra else {},
            recursion_limit,
        )

    def _core(
        self,
        input: Any,
        config: CheckpointConfig | None,
        modes: frozenset[str],
        extra: Mapping[str, Any] | None,
        recursion_limit: int,
    ) -> Core:
        cfg = _as_config(config, self.saver)
        return run_core(self._settings(cfg, modes, extra, recursion_limit), input, cfg)

    # -- running

    def invoke(
        self,
        input: Any,
        config: CheckpointConfig | None = None,
        *,
        recursion_limit: int = 10_000,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run the graph on `config`'s thread and return the final (or paused) state.

        `input` is the schema's fields to set (a dict or an instance; `None`, `{}` or the
        default instance is "no input": it resumes an unfinished thread), or a `Command`:
        `Command(update=..., goto=...)` starts at the named node(s); `Command(resume=answer,
        update=...)` answers pending interrupts and applies `update` to the state the resumed
        tasks see, committed with their superstep (no extra checkpoint). `extra` is merged into
        `metadata.extra` of every checkpoint this call writes. Async nodes and routers run on
        a private event loop; prefer `ainvoke` in async code."""
        core = self._core(input, config, frozenset(), extra, recursion_limit)
        return run_blocking(core, self.saver)

    async def ainvoke(
        self,
        input: Any,
        config: CheckpointConfig | None = None,
        *,
        recursion_limit: int = 10_000,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """`invoke` for asyncio: async nodes and routers are awaited on this loop, sync nodes
        run in worker threads, saver calls use the saver's async twins."""
        result: list[Any] = []
        core = self._core(input, config, frozenset(), extra, recursion_limit)
        async for _ in adrive(core, self.saver, result):
            pass
        return result[0]

    def stream(
        self,
        input: Any,
        config: CheckpointConfig | None = None,
        *,
        stream_mode: StreamMode | Sequence[StreamMode] = "updates",
        recursion_limit: int = 10_000,
        extra: Mapping[str, Any] | None = None,
    ) -> Iterator[Any]:
        """`invoke`, yielding after each superstep: `updates` gives `{node: update}`, `values`
        the full state (first the input's). A run that pauses ends with
        `{"__interrupt__": (Interrupt, ...)}` in `updates` mode (empty for a breakpoint).
        A list of modes yields `(mode, chunk)` pairs."""
        modes, single = _modes(stream_mode)
        core = self._core(input, config, modes, extra, recursion_limit)
        for mode, chunk in drive(core, self.saver):
            yield chunk if single else (mode, chunk)

    async def astream(
        self,
        input: Any,
        config: CheckpointConfig | None = None,
        *,
        stream_mode: StreamMode | Sequence[StreamMode] = "updates",
        recursion_limit: int = 10_000,
        extra: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Any]:
        modes, single = _modes(stream_mode)
        core = self._core(input, config, modes, extra, recursion_limit)
        async for mode, chunk in adrive(core, self.saver, []):
            yield chunk if single else (mode, chunk)

    # -- time travel

    def _need_saver(self, what: str) -> BaseCheckpointSaver:
        if self.saver is None:
            raise ValueError(
                f"{what} needs a checkpoint saver: compile(checkpointer=...) or "
                "with_checkpoint_saver(saver)"
            )
        return self.saver

    def _snapshot(self, tup: CheckpointTuple) -> StateSnapshot:
        # A history builds hundreds of these: the frozen dataclass's slots are set directly
        # (its __init__ sets each through object.__setattr__), an equal, immutable object.
        checkpoint = tup.checkpoint
        schema = self.spec.schema
        snapshot = _new_object(StateSnapshot)
        set_values, set_next, set_config, set_metadata, set_created, set_parent, set_interrupts = (
            _SNAPSHOT_SLOTS
        )
        set_values(
            snapshot,
            dict(checkpoint.values) if schema.kind == "typeddict"
            else schema.instance(checkpoint.values),
        )
        set_next(snapshot, tuple(checkpoint.next))
        set_config(snapshot, tup.config)
        set_metadata(snapshot, tup.metadata)
        set_created(snapshot, checkpoint.ts)
        set_parent(snapshot, tup.parent_config)
        set_interrupts(snapshot, interrupts_of(tup) if tup.pending_writes else ())
        return snapshot

    def _empty_snapshot(self, config: CheckpointConfig) -> StateSnapshot:
        if config.checkpoint_id is not None:
            raise CheckpointNotFound(not_found_message(config.thread_id, config.checkpoint_id))
        try:
            values = self.spec.schema.instance(self.spec.schema.initial_values())
        except InvalidUpdateError:
            values = None
        return StateSnapshot(values, (), config, None, None, None, ())

    def get_state(self, config: CheckpointConfig) -> StateSnapshot:
        tup = self._need_saver("get_state").get_tuple(config)
        return self._snapshot(tup) if tup is not None else self._empty_snapshot(config)

    async def aget_state(self, config: CheckpointConfig) -> StateSnapshot:
        tup = await self._need_saver("aget_state").aget_tuple(config)
        return self._snapshot(tup) if tup is not None else self._empty_snapshot(config)

    def get_state_history(
        self,
        config: CheckpointConfig,
        *,
        limit: int | None = None,
        before: CheckpointConfig | str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[StateSnapshot]:
        """The thread's checkpoints, newest first: the `limit` newest of those created before
        `before` (a config or a checkpoint id) whose metadata matches `filter` (`source`,
        `step` or a key of `metadata.extra`, as in `BaseCheckpointSaver.list`)."""
        saver = self._need_saver("get_state_history")
        tuples = saver.list(
            CheckpointConfig(config.thread_id),
            limit,
            before=_before(config, before),
            filter=filter,
        )
        return [self._snapshot(t) for t in reversed(tuples)]

    async def aget_state_history(
        self,
        config: CheckpointConfig,
        *,
        limit: int | None = None,
        before: CheckpointConfig | str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[StateSnapshot]:
        saver = self._need_saver("aget_state_history")
        tuples: Sequence[CheckpointTuple] = await saver.alist(
            CheckpointConfig(config.thread_id),
            limit,
            before=_before(config, before),
            filter=filter,
        )
        return [self._snapshot(t) for t in reversed(tuples)]

    def update_state(
        self,
        config: CheckpointConfig,
        values: Mapping[str, Any] | None,
        *,
        as_node: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CheckpointConfig:
        saver = self._need_saver("update_state")
        core = update_core(self.spec, config, values, as_node, dict(extra) if extra else {})
        written: CheckpointConfig = run_blocking(core, saver)
        return written

    async def aupdate_state(
        self,
        config: CheckpointConfig,
        values: Mapping[str, Any] | None,
        *,
        as_node: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CheckpointConfig:
        saver = self._need_saver("aupdate_state")
        result: list[Any] = []
        core = update_core(self.spec, config, values, as_node, dict(extra) if extra else {})
        async for _ in adrive(core, saver, result):
            pass
        written: CheckpointConfig = result[0]
        return written


def _before(
    config: CheckpointConfig, before: CheckpointConfig | str | None
) -> CheckpointConfig | None:
    if isinstance(before, str):
        return config.with_checkpoint_id(before)
    return before


def _modes(stream_mode: StreamMode | Sequence[StreamMode]) -> tuple[frozenset[str], bool]:
    modes = (stream_mode,) if isinstance(stream_mode, str) else tuple(stream_mode)
    for mode in modes:
        if mode not in ("updates", "values"):
            raise ValueError(f"stream_mode must be 'updates' or 'values', got {mode!r}")
    return frozenset(modes), isinstance(stream_mode, str)
