"""Graphs for the worker tests. Imported as `runtime_graphs` by the pytest process and by the
worker subprocesses (tests/runtime is on their PYTHONPATH); registered through
STEPWISE_EXTRA_GRAPHS / settings.STEPWISE_GRAPHS as "steps".

Every node appends a line to the file named by `state.log`, so a test can count how often
each node really ran, across processes. `slow` blocks until the file `state.gate` exists.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from orchestration import END, StateGraph
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
