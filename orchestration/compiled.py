"""`CompiledGraph`: a validated graph bound to an optional saver; runs, streams, reads and
edits threads. Sync and async entry points share the superstep machine in `pregel/`."""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orchestration import batching
from orchestration.cache import BaseCache
from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    CheckpointConfig,
    CheckpointTuple,
    HistoryEntry,
    history_entry,
)
from orchestration.checkpoint.namespaces import SEPARATOR, ns_tuple
from orchestration.checkpoint.storage.gcpause import gc_paused
from orchestration.checkpoint.storage.trusted import check_builder
from orchestration.config import (
    DEFAULT_RECURSION_LIMIT,
    as_checkpoint_config,
    checkpoint_extra,
    run_config,
    split_config,
)
from orchestration.context import RunContext, coerce_context
from orchestration.drawing import Graph, graph_of
from orchestration.errors import CheckpointNotFound, InvalidUpdateError
from orchestration.pregel import caching
from orchestration.pregel.drivers import adrive, check_max_concurrency, drive, run_blocking
from orchestration.pregel.durability import ExitSaver, check_durability
from orchestration.pregel.effects import Core, RunSettings, StreamMode
from orchestration.pregel.entry import not_found_message, update_core
from orchestration.pregel.loop import run_core
from orchestration.pregel.plan import (
    INTERRUPT,
    NO_SAVER_THREAD,
    head_of,
    live_view,
    pending_interrupts,
    raised_interrupts,
    task_id,
)
from orchestration.pregel.records import RecordSnapshot, lazy_tasks
from orchestration.pregel.subgraphs import (
    SubgraphNode,
    ainvoke_inside,
    inside_task,
    invoke_inside,
    pending_tasks,
    values_of,
)
from orchestration.spec import GraphSpec
from orchestration.streaming import Sink, check_modes
from orchestration.types import PregelTask, StateSnapshot, StateUpdate

if TYPE_CHECKING:
    from orchestration.store.base import BaseStore

# `_build_snapshots` fills a StateSnapshot's slots in this order: every field, or it fails
# here (import time) rather than leaving a field unset.
_SNAPSHOT_FIELDS = (
    "values", "next", "config", "metadata", "created_at", "parent_config", "interrupts", "tasks"
)
if tuple(f.name for f in dataclass_fields(StateSnapshot)) != _SNAPSHOT_FIELDS:
    raise TypeError("StateSnapshot's fields changed: update _SNAPSHOT_FIELDS and _build_snapshots")


class _SnapshotShell:
    """A `StateSnapshot` being built by `_build_snapshots`: its slots, no `__init__` (see
    `checkpoint.storage.trusted`, whose shells these are like)."""

    __slots__ = _SNAPSHOT_FIELDS


def _build_snapshots(
    entries: Iterable[HistoryEntry], instance: Callable[[dict[str, Any]], Any] | None
) -> list[StateSnapshot]:
    """The snapshots (without pending tasks) of `entries`, each values dict made a state
    instance by `instance` (None: a TypedDict state takes the dict as it is; an entry's dict
    is the caller's own, see `HistoryEntry`).

    A history builds hundreds: one loop with its names bound once, each snapshot a shell
    whose slots are stored here before it becomes a StateSnapshot (`__class__` assignment;
    the same object, equal and immutable, that the constructor builds, checked below at
    import). Without the call through a Python `__init__`, a snapshot costs about half."""
    snapshots: list[StateSnapshot] = []
    append = snapshots.append
    shell, snapshot_class, tasks_of = _SnapshotShell, RecordSnapshot, lazy_tasks
    for values, next_, config, metadata, ts, parent, pending in entries:
        snapshot = shell()
        snapshot.values = values if instance is None else instance(values)
        snapshot.next = next_
        snapshot.config = config
        snapshot.metadata = metadata
        snapshot.created_at = ts
        snapshot.parent_config = parent
        snapshot.interrupts = () if pending is None else raised_interrupts(pending)
        snapshot.tasks = tasks_of(config, next_, pending)
        snapshot.__class__ = snapshot_class  # type: ignore[assignment]
        append(snapshot)  # type: ignore[arg-type]
    return snapshots


check_builder(
    _build_snapshots([({"a": 1}, ("n",), CheckpointConfig("t", "1"), None, None, None, None)],
                     None)[0],
    RecordSnapshot({"a": 1}, ("n",), CheckpointConfig("t", "1"), None, None, None, (),
                   (PregelTask(task_id("1", 0, "n"), "n"),)),
)


def _bulk_steps(
    supersteps: Sequence[Sequence[StateUpdate]],
) -> list[tuple[Any, str | None, list[tuple[Any, str | None]]]]:
    """`bulk_update_state`'s supersteps as (first values, first as_node, the others), checked
    before any is written: each superstep needs at least one update."""
    if not supersteps:
        raise ValueError("No supersteps provided: give bulk_update_state a list of supersteps, "
                         "each a list of StateUpdate(values, as_node)")
    steps = []
    for index, updates in enumerate(supersteps):
        if not updates:
            raise ValueError(f"No updates provided in superstep {index}: each superstep is a "
                             "list of at least one StateUpdate(values, as_node)")
        pairs = [(update[0], update[1] if len(update) > 1 else None) for update in updates]
        steps.append((*pairs[0], pairs[1:]))
    return steps


def _update_config(
    config: Any, extra: Mapping[str, Any] | None
) -> tuple[CheckpointConfig, dict[str, Any]]:
    """`update_state`'s checkpoint and the metadata its config adds (as a call's does)."""
    cfg, given = split_config(config)
    if cfg is None:
        cfg = as_checkpoint_config(config)  # no thread: raises, saying what is missing
    return cfg, {**checkpoint_extra(given), **(extra or {})}


def _as_config(config: Any, saver: BaseCheckpointSaver | None) -> tuple[CheckpointConfig, dict]:
    """The thread a call runs on, and the rest of a LangGraph config dict (if one was given)."""
    cfg, given = split_config(config)
    if cfg is not None:
        return cfg, given
    if saver is not None:
        raise ValueError(
            "this graph has a checkpoint saver, so every call needs a thread: pass "
            'config={"configurable": {"thread_id": "<thread id>"}} or '
            "CheckpointConfig('<thread id>')"
        )
    return CheckpointConfig(NO_SAVER_THREAD), given


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
        store: BaseStore | None = None,
        name: str = "LangGraph",
        bound_config: Mapping[str, Any] | None = None,
        cache: BaseCache | None = None,
        persistent: bool = False,
    ) -> None:
        self.spec = spec
        self.saver = saver
        self.interrupt_before = interrupt_before
        self.interrupt_after = interrupt_after
        self.store = store
        # `compile(name=...)`: the graph's name, LangGraph's default when none is given
        self.name = name
        # `with_config(...)`: merged under every call's config (`batching.merged_config`)
        self.bound_config: dict[str, Any] = dict(bound_config or {})
        # `compile(cache=...)`: answers the tasks of nodes with a cache policy
        self.cache = cache
        # `compile(checkpointer=True)`: as a subgraph, each run of its node continues the
        # state the last one left (LangGraph's "subgraph with its own memory")
        self.persistent = persistent

    def _copy(self, **changes: Any) -> CompiledGraph:
        fields = {"saver": self.saver, "interrupt_before": self.interrupt_before,
                  "interrupt_after": self.interrupt_after, "store": self.store,
                  "name": self.name, "bound_config": self.bound_config, "cache": self.cache,
                  "persistent": self.persistent, **changes}
        return CompiledGraph(self.spec, **fields)

    @property
    def checkpointer(self) -> BaseCheckpointSaver | None:
        return self.saver

    @property
    def input_schema(self) -> type[Any]:
        """The class whose fields a caller may give at the start (`StateGraph(...,
        input_schema=...)`); the state schema when none was declared, as in LangGraph."""
        return (self.spec.input or self.spec.schema).cls

    @property
    def output_schema(self) -> type[Any]:
        """The class whose fields `invoke` returns (`StateGraph(..., output_schema=...)`);
        the state schema when none was declared, as in LangGraph."""
        return (self.spec.output or self.spec.schema).cls

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self.spec.nodes)

    def get_subgraphs(
        self, *, namespace: str | None = None, recurse: bool = False
    ) -> Iterator[tuple[str, CompiledGraph]]:
        """(name, graph) of each node that runs a compiled graph (`add_node(name, graph)`),
        as LangGraph's: only `namespace`'s when given, with their own subgraphs under
        `"outer|inner"` names when `recurse`."""
        for name, node in self.spec.nodes.items():
            if not isinstance(node.fn, SubgraphNode):
                continue
            if namespace is not None and name != namespace.split(SEPARATOR)[0]:
                continue
            child = node.fn.graph
            _, nested, rest = (namespace or "").partition(SEPARATOR)
            if not nested:
                yield name, child
            if recurse or nested:
                for inner, graph in child.get_subgraphs(namespace=rest or None, recurse=recurse):
                    yield f"{name}{SEPARATOR}{inner}", graph

    async def aget_subgraphs(
        self, *, namespace: str | None = None, recurse: bool = False
    ) -> AsyncIterator[tuple[str, CompiledGraph]]:
        for found in self.get_subgraphs(namespace=namespace, recurse=recurse):
            yield found

    def get_input_jsonschema(self, config: Any = None) -> dict[str, Any]:
        """The JSON Schema of what a caller may give (LangGraph's, for forms and API docs)."""
        return _json_schema(self.input_schema)

    def get_output_jsonschema(self, config: Any = None) -> dict[str, Any]:
        """The JSON Schema of what `invoke` returns."""
        return _json_schema(self.output_schema)

    def with_checkpoint_saver(self, saver: BaseCheckpointSaver | None) -> CompiledGraph:
        return self._copy(saver=saver)

    def with_store(self, store: BaseStore | None) -> CompiledGraph:
        """A new compiled graph whose nodes reach `store` (`store` parameter, `get_store()`);
        the original is unchanged."""
        return self._copy(store=store)

    def clear_cache(self, nodes: Sequence[str] | None = None) -> None:
        """Forget what the graph's cache holds for `nodes` (every node when None)."""
        self._cache("clear_cache").clear(self._cache_namespaces(nodes))

    async def aclear_cache(self, nodes: Sequence[str] | None = None) -> None:
        await self._cache("aclear_cache").aclear(self._cache_namespaces(nodes))

    def _cache(self, what: str) -> BaseCache:
        if self.cache is None:
            raise ValueError(
                f"{what}(): this graph has no cache; compile it with cache=InMemoryCache() "
                "(orchestration.cache)"
            )
        return self.cache

    def _cache_namespaces(self, nodes: Sequence[str] | None) -> list[tuple[str, ...]]:
        unknown = [n for n in nodes or () if n not in self.spec.nodes]
        if unknown:
            raise ValueError(f"clear_cache: no such node(s) {unknown} (nodes: {self.nodes})")
        return [caching.namespace(self.spec.nodes[n]) for n in nodes or self.spec.nodes]

    def get_graph(self, config: Any = None, *, xray: int | bool = False) -> Graph:
        """The graph's shape (LangGraph's `get_graph()`): `.nodes`, `.edges` and
        `.draw_mermaid()`. A subgraph is drawn as its node (`xray` is accepted, not used)."""
        return graph_of(self.spec, self.interrupt_before, self.interrupt_after)

    def with_config(self, config: Mapping[str, Any] | None = None, **kwargs: Any
                    ) -> CompiledGraph:
        """LangGraph's (LangChain's) `with_config`: a new compiled graph whose calls run with
        `config` (and `kwargs`, e.g. `recursion_limit=50`) under the config they are given;
        `configurable` keys merge, the call's winning."""
        return self._copy(bound_config=batching.merged_config(
            self.bound_config, {**dict(config or {}), **kwargs}))

    def batch(self, inputs: Sequence[Any], config: Any = None, *,
              return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """`invoke` each input, concurrently (`max_concurrency` in the config caps it), with
        one config for all or a list of them; results in the inputs' order. See `batching`."""
        return batching.run_batch(self.invoke, inputs, config, return_exceptions, kwargs)

    async def abatch(self, inputs: Sequence[Any], config: Any = None, *,
                     return_exceptions: bool = False, **kwargs: Any) -> list[Any]:
        """`batch` for asyncio: the inputs' `ainvoke`s run concurrently on this loop."""
        return await batching.run_abatch(self.ainvoke, inputs, config, return_exceptions,
                                         kwargs)

    def _core(
        self,
        input: Any,
        config: Any,
        modes: frozenset[str],
        extra: Mapping[str, Any] | None,
        recursion_limit: int | None,
        sink: Sink | None = None,
        interrupt_before: Sequence[str] | None = None,
        interrupt_after: Sequence[str] | None = None,
        context: Any = None,
        saver: BaseCheckpointSaver | None = None,
        output_keys: str | Sequence[str] | None = None,
    ) -> Core:
        """The call's loop; `saver` is what it writes through (`_call_saver`)."""
        if self.bound_config:
            config = batching.merged_config(self.bound_config, config)
        cfg, given = _as_config(config, self.saver)
        if given:
            # LangGraph adds a config's `metadata` (and plain `configurable` keys) to each
            # checkpoint the call writes, where `metadata["key"]` and `filter={"key": ...}`
            # find it: ours is `metadata.extra`.
            from_config = checkpoint_extra(given)
            if from_config:
                extra = {**from_config, **(extra or {})}
        if recursion_limit is None:
            recursion_limit = given.get("recursion_limit", DEFAULT_RECURSION_LIMIT)
        check_max_concurrency(given.get("max_concurrency"))
        durable = self.saver is not None
        thread = cfg.thread_id if durable or cfg.thread_id != NO_SAVER_THREAD else None
        settings = RunSettings(
            self.spec,
            cfg.thread_id,
            self.interrupt_before if interrupt_before is None else self._nodes_named(
                "interrupt_before", interrupt_before
            ),
            self.interrupt_after if interrupt_after is None else self._nodes_named(
                "interrupt_after", interrupt_after
            ),
            modes,
            dict(extra) if extra else {},
            recursion_limit,
            RunContext(
                saver,
                cfg.thread_id,
                cfg.checkpoint_ns,
                self.store,
                sink,
                run_config(thread, given, recursion_limit),
                durable,
                coerce_context(self.spec.context_schema, context),
            ),
            output_keys=output_keys if output_keys is None or isinstance(output_keys, str)
            else tuple(output_keys),
            cache=self.cache,
        )
        return run_core(settings, input, cfg)

    def _output(self, result: Any) -> Any:
        """`invoke`'s result: with an output schema, that schema's fields of the final state
        as a dict (and `"__interrupt__"` when the run paused), as LangGraph returns it."""
        output = self.spec.output
        if output is None:
            return result
        values = values_of(result)
        shown = {name: values[name] for name in output.fields if name in values}
        if INTERRUPT in values:
            shown[INTERRUPT] = values[INTERRUPT]
        return shown

    def _call_saver(self, durability: str | None) -> BaseCheckpointSaver | None:
        """The saver a call writes through: the graph's; with `durability="exit"` one that
        holds the call's checkpoints until it ends (`pregel/durability.py`)."""
        check_durability(durability)
        if durability == "exit" and self.saver is not None:
            return ExitSaver(self.saver)
        return self.saver

    def _nodes_named(self, what: str, names: Sequence[str] | str) -> frozenset[str]:
        """A per-call `interrupt_before`/`interrupt_after` (LangGraph's): "*" means every node."""
        if names == "*":
            return frozenset(self.spec.nodes)
        chosen = frozenset([names] if isinstance(names, str) else names)
        unknown = sorted(chosen - set(self.spec.nodes))
        if unknown:
            raise ValueError(
                f"{what}={sorted(chosen)!r} names {unknown}, which are not nodes of this "
                f"graph (nodes: {sorted(self.spec.nodes)})"
            )
        return chosen

    # -- running

    def invoke(
        self,
        input: Any,
        config: CheckpointConfig | Mapping[str, Any] | None = None,
        *,
        recursion_limit: int | None = None,
        extra: Mapping[str, Any] | None = None,
        interrupt_before: Sequence[str] | None = None,
        interrupt_after: Sequence[str] | None = None,
        context: Any = None,
        durability: str | None = None,
        stream_mode: StreamMode | Sequence[StreamMode] = "values",
        output_keys: str | Sequence[str] | None = None,
    ) -> Any:
        """Run the graph on `config`'s thread and return the final (or paused) state.

        `input` is the schema's fields to set (a dict or an instance; `None`, `{}` or the
        default instance is "no input": it resumes an unfinished thread), or a `Command`:
        `Command(update=..., goto=...)` starts at the named node(s); `Command(resume=answer,
        update=...)` answers pending interrupts and applies `update` to the state the resumed
        tasks see, committed with their superstep (no extra checkpoint); delivering the same
        answers again (a retried worker) is harmless, a different answer to an interrupt
        already answered raises `InvalidUpdateError`. `extra` is merged into
        `metadata.extra` of every checkpoint this call writes. `context` (LangGraph 1.x's
        run context) reaches a node declaring a `runtime` parameter as `runtime.context`
        (and `get_runtime().context`); it is not checkpointed. Async nodes and routers run on
        a private event loop; prefer `ainvoke` in async code.

        Called by a node while a graph runs it, the graph (compiled without a saver) runs as a
        subgraph of that node (`pregel/subgraphs.py`): an interrupt inside pauses the calling
        run, as in LangGraph, where a child invoked with the node's config is a subgraph too.

        `durability` (LangGraph 1.x's): "sync" or "async" (the default) store every
        superstep; "exit" only what the call ends with (`pregel/durability.py`).

        As LangGraph's: `output_keys` picks the fields returned (a name: that field's value),
        and a `stream_mode` other than "values" returns the list of `stream`'s chunks."""
        if stream_mode != "values":
            return list(self.stream(
                input, config, stream_mode=stream_mode, recursion_limit=recursion_limit,
                extra=extra, interrupt_before=interrupt_before, interrupt_after=interrupt_after,
                context=context, durability=durability, output_keys=output_keys,
            ))
        self._check_keys(output_keys)
        if self.saver is None and inside_task() is not None:
            return self._pick(self._output(invoke_inside(self, input)), output_keys)
        saver = self._call_saver(durability)
        core = self._core(
            input, config, frozenset(), extra, recursion_limit, None, interrupt_before,
            interrupt_after, context, saver,
        )
        return self._pick(self._output(run_blocking(core, saver)), output_keys)

    async def ainvoke(
        self,
        input: Any,
        config: CheckpointConfig | Mapping[str, Any] | None = None,
        *,
        recursion_limit: int | None = None,
        extra: Mapping[str, Any] | None = None,
        interrupt_before: Sequence[str] | None = None,
        interrupt_after: Sequence[str] | None = None,
        context: Any = None,
        durability: str | None = None,
        stream_mode: StreamMode | Sequence[StreamMode] = "values",
        output_keys: str | Sequence[str] | None = None,
    ) -> Any:
        """`invoke` for asyncio: async nodes and routers are awaited on this loop, sync nodes
        run in worker threads, saver calls use the saver's async twins."""
        if stream_mode != "values":
            return [chunk async for chunk in self.astream(
                input, config, stream_mode=stream_mode, recursion_limit=recursion_limit,
                extra=extra, interrupt_before=interrupt_before, interrupt_after=interrupt_after,
                context=context, durability=durability, output_keys=output_keys,
            )]
        self._check_keys(output_keys)
        if self.saver is None and inside_task() is not None:
            return self._pick(self._output(await ainvoke_inside(self, input)), output_keys)
        result: list[Any] = []
        saver = self._call_saver(durability)
        core = self._core(
            input, config, frozenset(), extra, recursion_limit, None, interrupt_before,
            interrupt_after, context, saver,
        )
        async for _ in adrive(core, saver, result):
            pass
        return self._pick(self._output(result[0]), output_keys)

    def _check_keys(self, output_keys: str | Sequence[str] | None) -> None:
        """Refuse, before anything runs, `output_keys` naming no field (LangGraph: ValueError)."""
        if output_keys is None:
            return
        names = [output_keys] if isinstance(output_keys, str) else list(output_keys)
        shown = self.spec.output_fields
        unknown = [n for n in names if n not in shown]
        if unknown:
            raise ValueError(
                f"output_keys names {unknown}, which the graph does not return "
                f"(fields: {sorted(shown)})"
            )

    @staticmethod
    def _pick(result: Any, output_keys: str | Sequence[str] | None) -> Any:
        """`invoke`'s result narrowed to `output_keys` (a name: that field's value alone)."""
        if output_keys is None:
            return result
        values = values_of(result)
        if isinstance(output_keys, str):
            return values.get(output_keys)
        picked = {name: values[name] for name in output_keys if name in values}
        if INTERRUPT in values:
            picked[INTERRUPT] = values[INTERRUPT]
        return picked

    def stream(
        self,
        input: Any,
        config: CheckpointConfig | Mapping[str, Any] | None = None,
        *,
        stream_mode: StreamMode | Sequence[StreamMode] = "updates",
        recursion_limit: int | None = None,
        extra: Mapping[str, Any] | None = None,
        subgraphs: bool = False,
        interrupt_before: Sequence[str] | None = None,
        interrupt_after: Sequence[str] | None = None,
        on_custom: Callable[[tuple[str, ...], Any], None] | None = None,
        context: Any = None,
        durability: str | None = None,
        output_keys: str | Sequence[str] | None = None,
    ) -> Iterator[Any]:
        """`invoke`, streaming as LangGraph does: `updates` gives one `{node: update}` per task
        (`{node: None}` for a node that returned None), `values` the full state (first the
        state the call starts from, then after each step that changed a field), `tasks` each
        task's start and result, `checkpoints` each checkpoint as saved, `debug` both, `custom`
        what nodes write with `get_stream_writer()`, as they write it. A run that pauses ends
        with `{"__interrupt__": (Interrupt, ...)}` in `updates` mode (empty for a breakpoint)
        and, for a dict state, the state with `"__interrupt__"` in `values`. A list of modes
        yields `(mode, chunk)` pairs; `subgraphs=True` yields `(namespace, chunk)` (or
        `(namespace, mode, chunk)`), `namespace` being the subgraph path as a tuple, `()` for
        this graph, and adds the subgraphs' updates and values. `config` may be a LangGraph
        config dict; `interrupt_before`/`interrupt_after` override the compiled breakpoints
        for this call.

        `on_custom(namespace, chunk)`, instead of the `custom` mode, receives what nodes write
        in the node's own thread, as they write it (nodes then run where `invoke` runs them).

        `output_keys` (LangGraph's): the fields `values` and `updates` chunks show (one name:
        that field's value); a step that changed none of them streams no `values` chunk, and a
        task that wrote none of them streams `{node: None}`. A subgraph's chunks are its own."""
        self._check_keys(output_keys)
        modes, single = check_modes(stream_mode)
        if on_custom is not None:
            sink: Sink | None = Sink((), False, on_custom)
        else:
            sink = Sink(modes, subgraphs) if _in_step(modes) or subgraphs else None
        saver = self._call_saver(durability)
        core = self._core(
            input, config, modes, extra, recursion_limit, sink, interrupt_before, interrupt_after,
            context, saver, output_keys,
        )
        driving = None if sink is None or sink.callback is not None else sink
        for ns, mode, chunk in drive(core, saver, driving):
            yield _shape(ns, mode, chunk, single, subgraphs)

    async def astream(
        self,
        input: Any,
        config: CheckpointConfig | Mapping[str, Any] | None = None,
        *,
        stream_mode: StreamMode | Sequence[StreamMode] = "updates",
        recursion_limit: int | None = None,
        extra: Mapping[str, Any] | None = None,
        subgraphs: bool = False,
        interrupt_before: Sequence[str] | None = None,
        interrupt_after: Sequence[str] | None = None,
        context: Any = None,
        durability: str | None = None,
        output_keys: str | Sequence[str] | None = None,
    ) -> AsyncIterator[Any]:
        self._check_keys(output_keys)
        modes, single = check_modes(stream_mode)
        sink = Sink(modes, subgraphs) if _in_step(modes) or subgraphs else None
        saver = self._call_saver(durability)
        core = self._core(
            input, config, modes, extra, recursion_limit, sink, interrupt_before, interrupt_after,
            context, saver, output_keys,
        )
        async for ns, mode, chunk in adrive(core, saver, [], sink):
            yield _shape(ns, mode, chunk, single, subgraphs)

    # -- time travel

    def _need_saver(self, what: str) -> BaseCheckpointSaver:
        if self.saver is None:
            raise ValueError(
                f"{what} needs a checkpoint saver: compile(checkpointer=...) or "
                "with_checkpoint_saver(saver)"
            )
        return self.saver

    def _snapshot(self, tup: CheckpointTuple) -> StateSnapshot:
        return self._snapshots((history_entry(tup),))[0]

    def _snapshots(self, entries: Iterable[HistoryEntry]) -> list[StateSnapshot]:
        schema = self.spec.schema
        return _build_snapshots(entries, None if schema.kind == "typeddict" else schema.instance)

    def _empty_snapshot(self, config: CheckpointConfig) -> StateSnapshot:
        if config.checkpoint_id is not None:
            raise CheckpointNotFound(not_found_message(config.thread_id, config.checkpoint_id))
        schema = self.spec.schema
        if schema.kind == "typeddict":
            # Empty, as LangGraph's: `if not graph.get_state(config).values` is how LangGraph
            # code asks whether a thread has started (a reducer's [] would read as started).
            return StateSnapshot({}, (), config, None, None, None, ())
        try:
            values = schema.instance(schema.initial_values())
        except InvalidUpdateError:
            values = None
        return StateSnapshot(values, (), config, None, None, None, ())

    def get_state(
        self, config: CheckpointConfig | Mapping[str, Any], *, subgraphs: bool = False
    ) -> StateSnapshot:
        """The latest (or the given) checkpoint's state; `tasks` lists its pending tasks with
        their interrupts, as LangGraph's (`state.tasks[0].interrupts`). With `subgraphs=True`
        each task running a subgraph also carries the subgraph's own state in `task.state`."""
        config = as_checkpoint_config(config)
        saver = self._need_saver("get_state")
        tup = saver.get_tuple(config)
        if tup is None:
            return self._empty_snapshot(config)
        if config.checkpoint_id is not None and not subgraphs:
            return self._snapshot(tup)  # the record: its tasks with what each raised
        return self._with_tasks(self._live(self._snapshot(tup), tup, config), saver, tup, subgraphs)

    def _live(
        self, snapshot: StateSnapshot, tup: CheckpointTuple, config: CheckpointConfig
    ) -> StateSnapshot:
        """The thread's latest state as LangGraph 1.x shows it (its "live" snapshot): only the
        interrupts still waiting, and when its superstep stopped half-way, the finished
        tasks' writes applied and those tasks out of `next`. A checkpoint asked for by id is
        shown as the record of its step (`_build_snapshots`), as in LangGraph."""
        if config.checkpoint_id is not None or not tup.pending_writes:
            return snapshot
        head = head_of(tup)  # its pending writes grouped once, for both views below
        waiting = tuple(o.interrupt for _, o in pending_interrupts(head) if o.interrupt)
        if waiting != snapshot.interrupts:
            snapshot = replace(snapshot, interrupts=waiting)
        if not snapshot.next:
            return snapshot
        schema = self.spec.schema
        live = live_view(schema, head)
        if live is None or not live[1]:
            # Every task finished but the superstep is not committed (a crash in between):
            # an empty `next` would read as a finished thread, so the record is shown.
            return snapshot
        values, left = live
        try:
            state = values if schema.kind == "typeddict" else schema.instance(values)
        except InvalidUpdateError:
            return snapshot
        return replace(snapshot, values=state, next=left)

    def _with_tasks(self, snapshot: StateSnapshot, saver: BaseCheckpointSaver,
                    tup: CheckpointTuple, subgraphs: bool) -> StateSnapshot:
        if not snapshot.next:
            return snapshot
        return replace(snapshot, tasks=pending_tasks(self, saver, tup, subgraphs=subgraphs))

    async def aget_state(
        self, config: CheckpointConfig | Mapping[str, Any], *, subgraphs: bool = False
    ) -> StateSnapshot:
        config = as_checkpoint_config(config)
        if subgraphs:
            return await self._need_saver("aget_state")._offload(
                self.get_state, config, subgraphs=True
            )
        saver = self._need_saver("aget_state")
        tup = await saver.aget_tuple(config)
        if tup is None:
            return self._empty_snapshot(config)
        if config.checkpoint_id is not None:
            return self._snapshot(tup)  # the record, as get_state
        snapshot = self._live(self._snapshot(tup), tup, config)
        return self._with_tasks(snapshot, saver, tup, False)  # no saver call

    def get_state_history(
        self,
        config: CheckpointConfig | Mapping[str, Any],
        *,
        limit: int | None = None,
        before: CheckpointConfig | str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> StateHistory:
        """The thread's checkpoints, newest first: the `limit` newest of those created before
        `before` (a config or a checkpoint id) whose metadata matches `filter` (`source`,
        `step` or a key of `metadata.extra`, as in `BaseCheckpointSaver.list`). A list that
        `next()` also takes from, as LangGraph's generator (`StateHistory`)."""
        saver = self._need_saver("get_state_history")
        config = as_checkpoint_config(config)
        with gc_paused():  # many objects, no cycles: see `gcpause`
            entries = saver.list_history(
                CheckpointConfig(config.thread_id, checkpoint_ns=config.checkpoint_ns),
                limit,
                before=_before(config, before),
                filter=filter,
            )
            return StateHistory(self._snapshots(reversed(entries)))

    def aget_state_history(
        self,
        config: CheckpointConfig | Mapping[str, Any],
        *,
        limit: int | None = None,
        before: CheckpointConfig | str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> AsyncHistory:
        """`await` it for the list (newest first), or `async for` over it as LangGraph code
        does."""
        return AsyncHistory(self._ahistory(config, limit, before, filter))

    async def _ahistory(
        self,
        config: CheckpointConfig | Mapping[str, Any],
        limit: int | None,
        before: CheckpointConfig | str | None,
        filter: Mapping[str, Any] | None,
    ) -> list[StateSnapshot]:
        saver = self._need_saver("aget_state_history")
        config = as_checkpoint_config(config)
        entries = await saver.alist_history(
            CheckpointConfig(config.thread_id, checkpoint_ns=config.checkpoint_ns),
            limit,
            before=_before(config, before),
            filter=filter,
        )
        with gc_paused():  # not across the await above: only this thread's own work
            return self._snapshots(reversed(entries))

    def _spec_of(self, ns: str) -> GraphSpec:
        """The graph whose checkpoints namespace `ns` holds: a subgraph added as a node
        (`add_node(name, compiled)`), followed down the path; this graph's own for the root,
        or where a node runs its child itself (not known here)."""
        from orchestration.checkpoint.namespaces import SEPARATOR, node_of

        spec = self.spec
        for segment in ns.split(SEPARATOR) if ns else ():
            node = spec.nodes.get(node_of(segment))
            if node is None or not isinstance(node.fn, SubgraphNode):
                return self.spec
            spec = node.fn.graph.spec
        return spec

    def update_state(
        self,
        config: CheckpointConfig | Mapping[str, Any],
        values: Mapping[str, Any] | None,
        *,
        as_node: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CheckpointConfig:
        """Write a checkpoint applying `values` as if `as_node` had returned them: through the
        fields' reducers, except values wrapped in `Overwrite(...)`, which replace the field.
        A config naming a past checkpoint starts a branch there. Returns the new config."""
        saver = self._need_saver("update_state")
        config, extra = _update_config(config, extra)
        spec = self._spec_of(config.checkpoint_ns)
        core = update_core(spec, config, values, as_node, extra)
        written: CheckpointConfig = run_blocking(core, saver)
        return written

    def bulk_update_state(
        self,
        config: CheckpointConfig | Mapping[str, Any],
        supersteps: Sequence[Sequence[StateUpdate]],
    ) -> CheckpointConfig:
        """Several `update_state`s in one call, as LangGraph's: each superstep's updates
        (`StateUpdate(values, as_node)`) are applied together as one checkpoint, as if those
        nodes ran side by side; the next superstep builds on it. Returns the last config."""
        saver = self._need_saver("bulk_update_state")
        for values, as_node, more in _bulk_steps(supersteps):
            config, extra = _update_config(config, None)
            spec = self._spec_of(config.checkpoint_ns)
            core = update_core(spec, config, values, as_node, extra, more=more)
            config = run_blocking(core, saver)
        return config  # type: ignore[return-value]

    async def abulk_update_state(
        self,
        config: CheckpointConfig | Mapping[str, Any],
        supersteps: Sequence[Sequence[StateUpdate]],
    ) -> CheckpointConfig:
        saver = self._need_saver("abulk_update_state")
        for values, as_node, more in _bulk_steps(supersteps):
            config, extra = _update_config(config, None)
            spec = self._spec_of(config.checkpoint_ns)
            result: list[Any] = []
            core = update_core(spec, config, values, as_node, extra, more=more)
            async for _ in adrive(core, saver, result):
                pass
            config = result[0]
        return config  # type: ignore[return-value]

    async def aupdate_state(
        self,
        config: CheckpointConfig | Mapping[str, Any],
        values: Mapping[str, Any] | None,
        *,
        as_node: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CheckpointConfig:
        saver = self._need_saver("aupdate_state")
        config, extra = _update_config(config, extra)
        result: list[Any] = []
        spec = self._spec_of(config.checkpoint_ns)
        core = update_core(spec, config, values, as_node, extra)
        async for _ in adrive(core, saver, result):
            pass
        written: CheckpointConfig = result[0]
        return written


class StateHistory(list[StateSnapshot]):
    """What `get_state_history` returns: Stepwise's list (newest first: index it, `len`,
    slice), and also an iterator as LangGraph's generator is, so `next(history)` takes the
    next snapshot not taken yet. `for` and `list(...)` see every snapshot either way."""

    __slots__ = ("_taken",)

    def __init__(self, snapshots: Iterable[StateSnapshot] = ()) -> None:
        super().__init__(snapshots)
        self._taken = 0

    def __next__(self) -> StateSnapshot:
        if self._taken >= len(self):
            raise StopIteration
        self._taken += 1
        return self[self._taken - 1]


class AsyncHistory:
    """What `aget_state_history` returns: awaitable (Stepwise's list) and async-iterable
    (LangGraph's async generator), so code written for either runs."""

    __slots__ = ("_pending", "_items")

    def __init__(self, pending: Coroutine[Any, Any, list[StateSnapshot]]) -> None:
        self._pending: Coroutine[Any, Any, list[StateSnapshot]] | None = pending
        self._items: list[StateSnapshot] | None = None

    async def _load(self) -> list[StateSnapshot]:
        if self._items is None:
            pending, self._pending = self._pending, None
            assert pending is not None
            self._items = await pending
        return self._items

    def __await__(self) -> Generator[Any, None, list[StateSnapshot]]:
        return self._load().__await__()

    async def __aiter__(self) -> AsyncIterator[StateSnapshot]:
        for snapshot in await self._load():
            yield snapshot

    def __del__(self) -> None:
        if self._pending is not None:  # never awaited nor iterated: no "never awaited" warning
            self._pending.close()


def _before(config: CheckpointConfig, before: Any) -> CheckpointConfig | None:
    if isinstance(before, str):
        return config.with_checkpoint_id(before)
    return None if before is None else as_checkpoint_config(before, "before")


def _shape(ns: str, mode: str, chunk: Any, single: bool, subgraphs: bool) -> Any:
    """A stream item as LangGraph shapes it: `chunk`, `(mode, chunk)` for a list of modes,
    and with `subgraphs=True` the namespace tuple in front."""
    if subgraphs:
        return (ns_tuple(ns), chunk) if single else (ns_tuple(ns), mode, chunk)
    return chunk if single else (mode, chunk)


def _json_schema(cls: type[Any]) -> dict[str, Any]:
    from pydantic import TypeAdapter  # only for this introspection: not on the run path

    return TypeAdapter(cls).json_schema(mode="validation")


def _in_step(modes: Collection[str]) -> bool:
    """Whether a stream in `modes` takes chunks while a step runs (a node's `custom` writes,
    its chat model's `messages`), which needs a sink."""
    return "custom" in modes or "messages" in modes
