"""Agent-shaped workloads: a graph made of subgraphs, and a node streaming its output with
`get_stream_writer()` (stream_mode=["updates", "custom"]). Each side builds the same shape
with its own API here (the shared builders in bench/graphs.py stay as they are)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from bench.adapters import Adapter
from bench.workloads import Context, Workload, beats_langgraph, expect

PARENT_NODES = 5  # subgraph nodes in a chain, each a child graph of...
CHILD_NODES = 4  # ...this many nodes
CHUNK_NODES = 10  # streaming: nodes in a chain, each writing...
CHUNKS = 20  # ...this many custom chunks


def _api(adapter: Adapter) -> dict[str, Any]:
    if adapter.label == "Stepwise":
        from orchestration import END, START, StateGraph, get_stream_writer

        return {"graph": StateGraph, "start": START, "end": END, "writer": get_stream_writer}
    from langgraph.config import get_stream_writer as lg_writer
    from langgraph.graph import END as LG_END
    from langgraph.graph import START as LG_START
    from langgraph.graph import StateGraph as LGStateGraph

    return {"graph": LGStateGraph, "start": LG_START, "end": LG_END, "writer": lg_writer}


def _chain(api: dict[str, Any], state: type, names: list[str], fns: list[Any]) -> Any:
    graph = api["graph"](state)
    for name, fn in zip(names, fns, strict=True):
        graph.add_node(name, fn)
    graph.add_edge(api["start"], names[0])
    for a, b in itertools.pairwise(names):
        graph.add_edge(a, b)
    graph.add_edge(names[-1], api["end"])
    return graph


def _step(state: dict[str, Any]) -> dict[str, Any]:
    return {"counter": state["counter"] + 1}


def _config(adapter: Adapter, thread: str) -> Any:
    if adapter.label == "Stepwise":
        from orchestration.checkpoint import CheckpointConfig

        return CheckpointConfig(thread)
    return {"configurable": {"thread_id": thread}, "recursion_limit": 10_000}


def _stream_kwargs(adapter: Adapter) -> dict[str, Any]:
    durability = getattr(adapter, "durability", None)
    return {"durability": durability} if durability else {}


class SubgraphRunner:
    """µs per task of a run made of subgraphs: 5 subgraph nodes x 4-node children = 25 tasks
    (5 parent tasks, 20 child tasks), each child checkpointing in the parent's thread."""

    def __init__(self, adapter: Adapter, ctx: Context, loops: int) -> None:
        from typing import TypedDict

        class Counter(TypedDict):
            counter: int

        self.adapter, self.loops = adapter, loops
        self.saver = adapter.memory_saver()
        api = _api(adapter)
        child_names = [f"c{i}" for i in range(CHILD_NODES)]
        child = _chain(api, Counter, child_names, [_step] * CHILD_NODES).compile()
        parent_names = [f"sub{i}" for i in range(PARENT_NODES)]
        self.graph = _chain(api, Counter, parent_names, [child] * PARENT_NODES).compile(
            checkpointer=self.saver
        )
        self.threads = itertools.count()

    def run(self) -> float:
        total = 0
        for _ in range(self.loops):
            thread = f"sub-{next(self.threads)}"
            start = time.perf_counter_ns()
            state = self.adapter.invoke(self.graph, {"counter": 0}, thread)
            total += time.perf_counter_ns() - start
            expect(state["counter"] == PARENT_NODES * CHILD_NODES, "subgraphs counter")
        return total / 1000 / (self.loops * PARENT_NODES * (CHILD_NODES + 1))

    def close(self) -> None:
        self.adapter.close_saver(self.saver)


class StreamingRunner:
    """µs per task of a 10-node chain whose nodes each stream 20 custom chunks (a model's
    tokens), consumed with stream_mode=["updates", "custom"] while they are written."""

    def __init__(self, adapter: Adapter, ctx: Context, loops: int) -> None:
        from typing import TypedDict

        class Counter(TypedDict):
            counter: int

        self.adapter, self.loops = adapter, loops
        self.saver = adapter.memory_saver()
        api = _api(adapter)
        get_writer = api["writer"]

        def talk(state: dict[str, Any]) -> dict[str, Any]:
            write = get_writer()
            for i in range(CHUNKS):
                write({"token": i})
            return {"counter": state["counter"] + 1}

        names = [f"n{i}" for i in range(CHUNK_NODES)]
        self.graph = _chain(api, Counter, names, [talk] * CHUNK_NODES).compile(
            checkpointer=self.saver
        )
        self.threads = itertools.count()

    def run(self) -> float:
        total = 0
        for _ in range(self.loops):
            config = _config(self.adapter, f"stream-{next(self.threads)}")
            start = time.perf_counter_ns()
            custom = updates = 0
            for mode, _chunk in self.graph.stream(
                {"counter": 0}, config, stream_mode=["updates", "custom"],
                **_stream_kwargs(self.adapter),
            ):
                if mode == "custom":
                    custom += 1
                else:
                    updates += 1
            total += time.perf_counter_ns() - start
            expect(custom == CHUNK_NODES * CHUNKS and updates == CHUNK_NODES, "stream chunks")
        return total / 1000 / (self.loops * CHUNK_NODES)

    def close(self) -> None:
        self.adapter.close_saver(self.saver)


AGENT_WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "subgraphs",
        "5 subgraph nodes x 4-node children, in-memory saver",
        "µs/task",
        lambda a, ctx, log: SubgraphRunner(a, ctx, loops=10),
        (beats_langgraph(5),),
        reps=31,
        quick_reps=5,
    ),
    Workload(
        "streaming",
        "10 nodes each streaming 20 custom chunks, updates+custom modes, in-memory saver",
        "µs/task",
        lambda a, ctx, log: StreamingRunner(a, ctx, loops=10),
        (beats_langgraph(5),),
        reps=31,
        quick_reps=5,
    ),
)
