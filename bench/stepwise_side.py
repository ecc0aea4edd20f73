"""Stepwise's side of the workloads, written to the public contract in docs/spec (API.md):
TypedDict states, `topic` list reducers, Send, `interrupt` + `Command(resume=...)`,
InMemoryCheckpointSaver and SqliteSaver."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated, Any, TypedDict

from bench.adapters import EngineUnavailable
from bench.graphs import GraphApi, GraphBuilders
from bench.nodes import State

try:
    from orchestration import END, START, Command, Send, StateGraph, interrupt
    from orchestration.checkpoint import CheckpointConfig, InMemoryCheckpointSaver, SqliteSaver
    from orchestration.reducers import topic
except ImportError as exc:  # the engine is being written; the harness skips this side
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

    class LinearState(TypedDict):
        counter: int
        note: str

    class FanState(TypedDict):
        round: int
        results: Annotated[list, topic]
        joins: int

    class AppendState(TypedDict):
        items: Annotated[list, topic]
        n: int

    class AskState(TypedDict):
        question: str
        answer: str


def _git_revision() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


class StepwiseAdapter(GraphBuilders):
    label = "Stepwise"

    def __init__(self) -> None:
        if _IMPORT_ERROR is not None:
            raise EngineUnavailable(f"cannot import the Stepwise engine: {_IMPORT_ERROR}")
        self.api = GraphApi(
            StateGraph, START, END, Send, interrupt, LinearState, FanState, AppendState, AskState
        )

    def versions(self) -> dict[str, str]:
        return {"stepwise": f"git {_git_revision()}"}

    def memory_saver(self) -> Any:
        return InMemoryCheckpointSaver()

    def sqlite_saver(self, path: str) -> Any:
        return SqliteSaver(path)

    def close_saver(self, saver: Any) -> None:
        close = getattr(saver, "close", None)
        if callable(close):
            close()

    def invoke(self, graph: Any, input: State, thread_id: str) -> State:
        return graph.invoke(input, CheckpointConfig(thread_id))

    def resume(self, graph: Any, answer: Any, thread_id: str) -> State:
        return graph.invoke(Command(resume=answer), CheckpointConfig(thread_id))

    def history(self, graph: Any, thread_id: str) -> list[Any]:
        return list(graph.get_state_history(CheckpointConfig(thread_id)))

    def saver_list(self, saver: Any, thread_id: str) -> list[Any]:
        return list(saver.list(CheckpointConfig(thread_id)))
