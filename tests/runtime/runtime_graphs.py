"""Graphs for the worker tests. Imported as `runtime_graphs` by the pytest process and by the
worker subprocesses (tests/runtime is on their PYTHONPATH); registered through
STEPWISE_EXTRA_GRAPHS / settings.STEPWISE_GRAPHS (`runtime_helpers.TEST_GRAPHS`).

Every node appends a line to the file named by `state.log`, so a test can count how often
each node really ran, across processes. `slow` blocks until the file `state.gate` exists.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from orchestration import END, StateGraph, interrupt
from orchestration.reducers import topic


@dataclass
class Steps:
    log: str = ""
    gate: str = ""
    done: Annotated[list[str], topic] = field(default_factory=list)


def record(state: Steps, line: str) -> None:
    with open(state.log, "a", encoding="utf-8") as fh:
        fh.write(f"{line} {os.getpid()}\n")
        fh.flush()
        os.fsync(fh.fileno())


def first(state: Steps) -> dict[str, Any]:
    record(state, "first")
    return {"done": ["first"]}


def slow(state: Steps) -> dict[str, Any]:
    record(state, "slow:start")
    deadline = time.monotonic() + 60
    while not os.path.exists(state.gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {state.gate} never opened")
        time.sleep(0.02)
    record(state, "slow:end")
    return {"done": ["slow"]}


def last(state: Steps) -> dict[str, Any]:
    record(state, "last")
    return {"done": ["last"]}


def build() -> Any:
    builder = StateGraph(Steps)
    builder.add_node("first", first)
    builder.add_node("slow", slow)
    builder.add_node("last", last)
    builder.set_entry_point("first").add_edge("first", "slow").add_edge("slow", "last")
    builder.add_edge("last", END)
    return builder.compile()


graph = build()


def build_subgraph_steps() -> Any:
    """`graph` run as the one node ("steps") of a parent graph: its supersteps are subgraph
    checkpoints (namespace "steps")."""
    builder = StateGraph(Steps)
    builder.add_node("steps", graph)
    builder.set_entry_point("steps").add_edge("steps", END)
    return builder.compile()


subgraph_steps_graph = build_subgraph_steps()


# -- reviews: one review, or two in parallel ----------------------------------------------------


@dataclass
class Reviewed:
    log: str = ""
    # a node blocks at a point named in `hold` (e.g. "review:answered") until the file
    # `gate` exists: the tests kill the worker there
    gate: str = ""
    hold: Annotated[list[str], topic] = field(default_factory=list)
    # every answer a node applied, in order: "decided exactly once" reads this
    applied: Annotated[list[str], topic] = field(default_factory=list)


def wait_at(state: Reviewed, point: str) -> None:
    record(state, point)
    if point not in state.hold:
        return
    deadline = time.monotonic() + 60
    while not os.path.exists(state.gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {state.gate} never opened")
        time.sleep(0.02)


def ask(state: Reviewed) -> dict[str, Any]:
    record(state, "ask")
    return {}


def reviewer(name: str) -> Any:
    def review(state: Reviewed) -> dict[str, Any]:
        wait_at(state, f"{name}:enter")
        answer = interrupt({"kind": "review", "title": f"{name} asks", "data": {"n": name},
                            "actions": ["approve", "reject"]})
        wait_at(state, f"{name}:answered")
        return {"applied": [f"{name}={answer['action']}"]}

    review.__name__ = name
    return review


def after(state: Reviewed) -> dict[str, Any]:
    wait_at(state, "after")
    return {}


def build_reviewed(parallel: bool) -> Any:
    builder = StateGraph(Reviewed)
    builder.add_node("ask", ask)
    builder.add_node("after", after)
    builder.set_entry_point("ask")
    names = ["review_a", "review_b"] if parallel else ["review"]
    for name in names:
        builder.add_node(name, reviewer(name))
        builder.add_edge("ask", name)
    builder.add_edge(names, "after")
    builder.add_edge("after", END)
    return builder.compile()


reviewed_graph = build_reviewed(parallel=False)
parallel_graph = build_reviewed(parallel=True)


def gated_reviewed_graph() -> Any:
    """`reviewed_graph`, but the first load in a worker that has STEPWISE_TEST_LOAD_GATE set
    waits while the file `<gate>.armed` exists and `<gate>` does not: a worker can be
    killed after it claimed a run and before the engine saw anything of it."""
    gate = os.environ.get("STEPWISE_TEST_LOAD_GATE", "")
    while gate and os.path.exists(f"{gate}.armed") and not os.path.exists(gate):
        time.sleep(0.02)
    return reviewed_graph
