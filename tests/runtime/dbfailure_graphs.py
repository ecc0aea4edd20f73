"""A graph whose node loses its database connection mid-transaction, once: what a worker sees
when PostgreSQL restarts under a run (tests/runtime/test_dbfailure.py). Imported by the
pytest process and by worker subprocesses (tests/runtime is on their PYTHONPATH).

`write` appends a line to `state.log` on every attempt. On the first (while the file
`state.marker` does not exist) it terminates its own PostgreSQL backend inside a transaction:
the query fails with an OperationalError, the rollback fails too, and Django drops the
connection, so the worker's next query gets a fresh one, exactly as after a real restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from django.db import connection, transaction

from orchestration import END, StateGraph
from orchestration.reducers import topic


@dataclass
class Blip:
    log: str = ""
    marker: str = ""
    done: Annotated[list[str], topic] = field(default_factory=list)


def record(state: Blip, line: str) -> None:
    with open(state.log, "a", encoding="utf-8") as fh:
        fh.write(f"{line} {os.getpid()}\n")


def write(state: Blip) -> dict[str, Any]:
    record(state, "write")
    if not os.path.exists(state.marker):
        Path(state.marker).touch()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    return {"done": ["write"]}


def last(state: Blip) -> dict[str, Any]:
    record(state, "last")
    return {"done": ["last"]}


def build() -> Any:
    builder = StateGraph(Blip)
    builder.add_node("write", write)
    builder.add_node("last", last)
    builder.set_entry_point("write").add_edge("write", "last").add_edge("last", END)
    return builder.compile()


graph = build()
