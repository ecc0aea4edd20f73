"""Graphs for the write-behind tests (tests/runtime is on the child process's PYTHONPATH).

`crash_graph`: four nodes in a chain, each recording that it ran in the file `state.log`;
`third` SIGKILLs its own process the first time it runs, while the checkpoint after
`second` may still be in flight (sent, not yet collected) on the write-behind connection.

`ask_graph`: one node that asks (`interrupt`) and, the first time it is answered, SIGKILLs its
own process while the answer is held back for the resumed superstep's put
(`DjangoCheckpointSaver.put_writes_deferred`).
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Annotated, Any

from orchestration import END, StateGraph, interrupt
from orchestration.reducers import topic


@dataclass
class Chain:
    log: str = ""
    done: Annotated[list[str], topic] = field(default_factory=list)


def _record(state: Chain, name: str) -> None:
    with open(state.log, "a", encoding="utf-8") as fh:
        fh.write(f"{name}\n")
        fh.flush()
        os.fsync(fh.fileno())


def _node(name: str, *, crash: bool = False) -> Any:
    def run(state: Chain) -> dict[str, Any]:
        _record(state, name)
        if crash and not os.path.exists(state.log + ".crashed"):
            open(state.log + ".crashed", "w").close()  # noqa: SIM115 - a marker, closed at once
            os.kill(os.getpid(), signal.SIGKILL)
        return {"done": [name]}

    return run


def crash_graph() -> Any:
    builder = StateGraph(Chain)
    names = ("first", "second", "third", "fourth")
    for name in names:
        builder.add_node(name, _node(name, crash=name == "third"))
    builder.set_entry_point("first")
    for a, b in zip(names, names[1:], strict=False):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile()


@dataclass
class Question:
    log: str = ""
    answer: str = ""


def _ask(state: Question) -> dict[str, Any]:
    _record(state, "asked")
    answer = interrupt("approve?")
    _record(state, f"answered-{answer}")
    if not os.path.exists(state.log + ".crashed"):
        open(state.log + ".crashed", "w").close()  # noqa: SIM115 - a marker, closed at once
        os.kill(os.getpid(), signal.SIGKILL)
    return {"answer": answer}


def ask_graph() -> Any:
    builder = StateGraph(Question)
    builder.add_node("ask", _ask)
    builder.set_entry_point("ask")
    builder.add_edge("ask", END)
    return builder.compile()


if __name__ == "__main__":  # the child: run the graph on the test database until it dies
    import django

    django.setup()
    from django.db import connection

    from orchestration.checkpoint import CheckpointConfig
    from orchestration.runtime.savers import DjangoCheckpointSaver
    from orchestration.types import Command

    saver = DjangoCheckpointSaver(durability="async")
    if sys.argv[1] == "answer":  # answer the paused ask_graph thread argv[2] with argv[3]
        # as a worker's saver: answers held for the put (write-behind on PostgreSQL, the
        # put's own transaction on SQLite)
        saver = DjangoCheckpointSaver(
            durability="async" if connection.vendor == "postgresql" else "sync")
        graph = ask_graph().with_checkpoint_saver(saver)
        graph.invoke(Command(resume=sys.argv[3]), CheckpointConfig(sys.argv[2]))
    else:
        graph = crash_graph().with_checkpoint_saver(saver)
        graph.invoke({"log": sys.argv[2]}, CheckpointConfig(sys.argv[1]))
