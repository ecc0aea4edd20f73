"""`StateGraph`: build a graph of nodes and edges, then `compile()` it (validating every problem
at once) into a `CompiledGraph` that runs it."""

from __future__ import annotations

import inspect
import typing
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

from orchestration.cache import BaseCache
from orchestration.checkpoint.base import BaseCheckpointSaver
from orchestration.compiled import CompiledGraph
from orchestration.config import wants_config
from orchestration.context import with_runtime_param, with_store_param, with_writer_param
from orchestration.errors import GraphValidationError
from orchestration.spec import ANYWHERE, Branch, GraphSpec, NodeSpec
from orchestration.state import Schema, input_schema_of, register_with_serializer
from orchestration.types import END, START, CachePolicy, Command, RetryPolicy

if typing.TYPE_CHECKING:
    from orchestration.store.base import BaseStore


def _policies(given: Any) -> tuple[RetryPolicy, ...] | str:
    """`retry_policy` as a tuple of policies, or what is wrong with it."""
    if given is None:
        return ()
    policies = (given,) if isinstance(given, RetryPolicy) else given
    if isinstance(policies, Sequence) and not isinstance(policies, str) and all(
        isinstance(p, RetryPolicy) for p in policies
    ):
        return tuple(policies)
    return (f"retry_policy must be a RetryPolicy or a sequence of them, not {given!r} "
            "(from orchestration import RetryPolicy)")


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


def _literal_targets(router: Any) -> tuple[str, ...] | None:
    """The names of a router's `-> Literal["a", "b"]` return annotation (a callable
    object's `__call__`), None when it has none or it does not resolve."""
    target = router
    if not inspect.isfunction(router) and not inspect.ismethod(router):
        target = getattr(router, "__call__", None)  # noqa: B004 - callable objects count too
    try:
        hint = typing.get_type_hints(target).get("return")
    except Exception:  # noqa: BLE001 - unresolvable hints: the router may go anywhere
        return None
    if typing.get_origin(hint) is not Literal:
        return None
    return tuple(str(name) for name in typing.get_args(hint))


def _declared_input(fn: Any) -> type[Any] | None:
    """The class a node function's first parameter is annotated with, if it has annotations
    of its own (a TypedDict, dataclass or pydantic model): LangGraph reads that as the node's
    input schema. None when unannotated or unresolvable (LangGraph then gives the state)."""
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        target = fn
    else:  # a callable object: its __call__'s annotations
        target = getattr(fn, "__call__", None)  # noqa: B004
    if target is None:
        return None
    try:
        hints = typing.get_type_hints(target)
        first = next(iter(inspect.signature(target).parameters))
    except (NameError, TypeError, ValueError, StopIteration):
        return None
    hint = hints.get(first)
    if not isinstance(hint, type) or hint is dict:
        return None
    try:
        return hint if typing.get_type_hints(hint) else None
    except Exception:  # an annotation of the class that does not resolve: not a schema
        return None


def _is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects count too
    )


class StateGraph:
    """Builder: add nodes and edges, then `compile()`. Every method returns the graph."""

    def __init__(
        self,
        schema: type[Any],
        *,
        input_schema: type[Any] | None = None,
        input: type[Any] | None = None,  # noqa: A002 - LangGraph's older name for input_schema
        context_schema: type[Any] | None = None,
        output_schema: type[Any] | None = None,
        output: type[Any] | None = None,  # LangGraph's older name for output_schema
    ) -> None:
        """`input_schema` (LangGraph's keyword; `input=` is its older, deprecated alias) names
        the fields a caller may give at the start: `invoke` refuses any other key, so state
        the graph's nodes own (a decision, an override) cannot be set from outside.
        `context_schema` (LangGraph 1.x) is the type of what `invoke(..., context=...)` gives
        the nodes through `Runtime.context`; kept as `context_schema`, for the reader.
        `output_schema` (`output=`, deprecated) names the fields `invoke` returns, as a dict
        (the state keeps every field: `get_state` and `stream` show them all, as in
        LangGraph); a subgraph gives its parent only those."""
        if input is not None:
            warnings.warn(
                "StateGraph(input=...) is deprecated (as in LangGraph); use input_schema=...",
                DeprecationWarning, stacklevel=2,
            )
            input_schema = input_schema or input
        if output is not None:
            warnings.warn(
                "StateGraph(output=...) is deprecated (as in LangGraph); use output_schema=...",
                DeprecationWarning, stacklevel=2,
            )
            output_schema = output_schema or output
        self.schema = Schema(schema)
        self.context_schema = context_schema
        self.input_schema = input_schema_of(self.schema, input_schema)
        self.output_schema = input_schema_of(self.schema, output_schema, "output_schema")
        register_with_serializer(self.schema.user_types())
        if self.input_schema is not None:
            register_with_serializer(self.input_schema.user_types())
        self._nodes: dict[str, NodeSpec] = {}
        self._edges: list[tuple[str, str]] = []
        self._joins: list[tuple[tuple[str, ...], str]] = []
        self._branches: list[Branch] = []
        # Naming problems found while building are reported by compile(), all together.
        self._problems: list[str] = []
        self._refused: set[str] = set()  # nodes add_node refused (their problem is said)
        # add_node(..., metadata=...): node name -> its metadata, as given
        self.node_metadata: dict[str, dict[str, Any]] = {}
        # node -> the schema it reads, when not the state's (see GraphSpec.reads)
        self._node_inputs: dict[str, Schema] = {}

    @property
    def nodes(self) -> dict[str, NodeSpec]:
        """The nodes added so far, by name (LangGraph's `builder.nodes`): each one's spec,
        with its function as `.fn` (a copy: adding nodes goes through `add_node`)."""
        return dict(self._nodes)

    def add_node(
        self,
        name: str | Callable[..., Any],
        fn: Callable[..., Any] | None = None,
        *,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        retry: RetryPolicy | Sequence[RetryPolicy] | None = None,
        defer: bool = False,
        side_effects: bool = False,
        metadata: Mapping[str, Any] | None = None,
        destinations: Mapping[str, str] | Sequence[str] | None = None,
        input_schema: type[Any] | None = None,
        cache_policy: CachePolicy | None = None,
    ) -> StateGraph:
        """`add_node(fn)` names the node after `fn.__name__` (as LangGraph does);
        `defer=True` runs the node only once nothing else is pending in the run;
        `side_effects=True` declares that the node acts outside the graph (see NodeSpec).

        As LangGraph's: `retry_policy` (`retry`, its older name) is one `RetryPolicy` or
        several, the first whose `retry_on` takes an error deciding; `destinations` names
        where a `Command` it returns may go (a mapping's keys), for a node whose return
        annotation does not say; `metadata` is kept for the reader (`node_metadata`).
        `input_schema` (else the class the function's first parameter is annotated with)
        is what the node reads: only that schema's fields; fields the state lacks become
        private state that nodes pass each other (not part of the input or the result).
        `cache_policy` (with `compile(cache=...)`): a task whose input's key the cache holds
        takes the writes stored there instead of running."""
        if fn is None and not isinstance(name, str):
            fn = name
            name = getattr(fn, "name", None) or getattr(fn, "__name__", None)
            if not isinstance(name, str) or name == "<lambda>":
                self._problems.append(
                    f"add_node({fn!r}) cannot name this node: it has no __name__; "
                    "give the name first: add_node('name', fn)"
                )
                return self
        if not isinstance(name, str) or not name:
            self._problems.append(f"node name {name!r} is empty or not a string")
            return self
        if name in (START, END) or name.startswith("__"):
            self._problems.append(
                f"node name {name!r} is reserved (START, END and names starting with '__')"
            )
            return self
        if ":" in name or "|" in name:
            # both mark subgraph namespaces ("outer:task|inner"), as in LangGraph
            self._problems.append(
                f"node name {name!r} contains {':' if ':' in name else '|'!r}, which is "
                "reserved for subgraph namespaces; rename the node"
            )
            return self
        if name in self._nodes:
            self._problems.append(f"node {name!r} is added twice")
            return self
        if fn is None:
            self._problems.append(
                f"node {name!r} has no function: add_node({name!r}, fn) or add_node(fn)"
            )
            return self
        fn = self._subgraph_or_fn(name, fn)
        if fn is None:
            self._refused.add(name)  # said why; its edges are not "to an unknown node" too
            return self
        if not callable(fn):
            self._problems.append(f"node {name!r}: {fn!r} is not callable")
            return self
        if retry_policy is not None and retry is not None:
            self._problems.append(
                f"node {name!r}: give retry_policy= (retry= is its older name), not both"
            )
            return self
        if cache_policy is not None and not isinstance(cache_policy, CachePolicy):
            self._problems.append(
                f"node {name!r}: cache_policy must be a CachePolicy(key_func=..., ttl=...), "
                f"not {cache_policy!r:.60}"
            )
            return self
        policies = _policies(retry_policy if retry_policy is not None else retry)
        if isinstance(policies, str):
            self._problems.append(f"node {name!r}: {policies}")
            return self
        targets = _command_targets(fn)
        if destinations is not None and targets != "*":
            named = destinations.keys() if isinstance(destinations, Mapping) else destinations
            targets = tuple(dict.fromkeys([*targets, *map(str, named)]))
        reads = self._reads(name, fn, input_schema)
        if isinstance(reads, str):
            self._problems.append(reads)
            return self
        if reads is not None:
            self._node_inputs[name] = reads
        drawn = dict(metadata or {})
        tools = getattr(fn, "tools_by_name", None)  # a ToolNode (duck-typed, as LangGraph)
        if isinstance(tools, Mapping) and tools:
            drawn["__tools"] = list(tools)
        fn = with_runtime_param(with_store_param(with_writer_param(fn)))
        self._nodes[name] = NodeSpec(
            name,
            fn,
            _is_async_callable(fn),
            policies,
            targets,
            side_effects,
            defer,
            wants_config(fn),
            drawn or None,
            cache_policy,
        )
        if metadata:
            self.node_metadata[name] = dict(metadata)
        return self

    def _reads(self, name: str, fn: Any, given: type[Any] | None) -> Schema | None | str:
        """The node's input schema when it is not the state's; a problem as a string."""
        from orchestration.pregel.subgraphs import SubgraphNode

        cls = given if given is not None else (
            None if isinstance(fn, SubgraphNode) else _declared_input(fn)
        )
        if cls is None or cls is self.schema.cls:
            return None
        try:
            reads = Schema(cls)
        except TypeError as error:
            if given is None:  # an annotation that is no schema: the node reads the state
                return None
            return f"node {name!r}: input_schema {error}"
        register_with_serializer(reads.user_types())
        return reads

    def _subgraph_or_fn(self, name: str, fn: Any) -> Any:
        """A compiled graph given as a node runs as a subgraph (`pregel/subgraphs.py`)."""
        from orchestration.pregel.subgraphs import SubgraphNode

        if not isinstance(fn, CompiledGraph):
            return fn
        if fn.saver is not None:
            self._problems.append(
                f"node {name!r}: the graph given as a subgraph has a checkpoint saver bound; a "
                "subgraph checkpoints in its parent's thread and saver, so add it compiled "
                "without one (graph.compile(), not compile(checkpointer=...))"
            )
            return None
        if fn.interrupt_before or fn.interrupt_after:
            self._problems.append(
                f"node {name!r}: the graph given as a subgraph has breakpoints "
                "(interrupt_before/interrupt_after); a subgraph pauses with interrupt() inside "
                "its nodes, or put the breakpoint on the parent's node"
            )
            return None
        return SubgraphNode(fn, name, frozenset(self.schema.fields))

    def add_sequence(
        self, nodes: Sequence[Callable[..., Any] | tuple[str, Callable[..., Any]]]
    ) -> StateGraph:
        """LangGraph's `add_sequence`: add the nodes (functions, or (name, fn) pairs) and an
        edge from each to the next."""
        names: list[str] = []
        for node in nodes:
            if isinstance(node, tuple):
                name, fn = node
                self.add_node(name, fn)
            else:
                name = getattr(node, "__name__", "")
                self.add_node(node)
            names.append(name)
        for source, target in zip(names, names[1:], strict=False):
            self.add_edge(source, target)
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
        declared = _literal_targets(router) if mapping is None else None
        self._branches.append(
            Branch(source, router, mapping, _is_async_callable(router), declared)
        )
        return self

    def set_conditional_entry_point(
        self, router: Callable[[Any], Any], path_map: Mapping[Hashable, str] | None = None
    ) -> StateGraph:
        return self.add_conditional_edges(START, router, path_map)

    def compile(
        self,
        *,
        checkpointer: BaseCheckpointSaver | bool | None = None,
        interrupt_before: Sequence[str] = (),
        interrupt_after: Sequence[str] = (),
        store: BaseStore | None = None,
        name: str | None = None,
        cache: BaseCache | None = None,
    ) -> CompiledGraph:
        schema, private_problems = self.schema.with_private(self._node_inputs.values())
        problems = [
            *self._problems, *private_problems, *self._validate(interrupt_before, interrupt_after)
        ]
        if problems:
            raise GraphValidationError(problems)
        reads = dict(self._node_inputs)
        output = self.output_schema
        if schema.private and schema.kind == "typeddict":
            # A node typed with the state, and the caller, do not see the private fields.
            reads = {name: reads.get(name, self.schema) for name in self._nodes}
            output = output or self.schema
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
            schema,
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
            frozenset(name for name, node in self._nodes.items() if node.defer),
            self.input_schema,
            output,
            reads,
            self.context_schema,
        )
        return CompiledGraph(
            spec,
            None if isinstance(checkpointer, bool) else checkpointer,
            # LangGraph's `checkpointer=True` on a subgraph: it keeps its state from one run
            # of its node to the next, in the parent's thread (`pregel/subgraphs.py`)
            persistent=checkpointer is True,
            interrupt_before=frozenset(interrupt_before),
            interrupt_after=frozenset(interrupt_after),
            store=store,
            name=name or "LangGraph",
            cache=cache,
        )

    # -- validation --------------------------------------------------------------------------

    def _validate(self, before: Sequence[str], after: Sequence[str]) -> list[str]:
        problems: list[str] = []
        known = set(self._nodes) | self._refused

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
        return problems

    # LangGraph's rules, which Stepwise follows (API.md, third round): a node with no
    # outgoing edge ends its path there, a node no static edge reaches is allowed (a
    # Command(goto=...) may reach it) and a loop without a way out is stopped at run time by
    # recursion_limit. So compile only checks names and the entry, above.
