"""LangGraph's side of the workloads: TypedDict states, `operator.add` list reducers, Send,
`interrupt` + `Command(resume=...)`, InMemorySaver and the official SqliteSaver."""

from __future__ import annotations

import operator
import sqlite3
from importlib.metadata import version
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from bench.graphs import GraphApi, GraphBuilders
from bench.nodes import State


class LinearState(TypedDict):
    counter: int
    note: str


class FanState(TypedDict):
    round: int
    results: Annotated[list, operator.add]
    joins: int


class AppendState(TypedDict):
    items: Annotated[list, operator.add]
    n: int


class AskState(TypedDict):
    question: str
    answer: str


class LangGraphAdapter(GraphBuilders):
    label = "LangGraph"
    api = GraphApi(
        StateGraph, START, END, Send, interrupt, LinearState, FanState, AppendState, AskState
    )

    def __init__(self, durability: str = "async") -> None:
        # LangGraph's default durability is "async": a checkpoint is written in a background
        # thread while the next superstep runs. Stepwise always commits before moving on.
        self.durability = durability

    def versions(self) -> dict[str, str]:
        names = ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite")
        return {name: version(name) for name in names}

    def memory_saver(self) -> Any:
        return InMemorySaver()

    def sqlite_saver(self, path: str) -> Any:
        conn = sqlite3.connect(path, check_same_thread=False)
        # LangGraph's setup() only sets journal_mode=WAL (synchronous stays FULL); we also set
        # synchronous=NORMAL so both savers pay the same fsync policy.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
        saver.setup()
        return saver

    def close_saver(self, saver: Any) -> None:
        if isinstance(saver, SqliteSaver):
            saver.conn.close()

    def _config(self, thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": 10_000}

    def invoke(self, graph: Any, input: State, thread_id: str) -> State:
        return graph.invoke(input, self._config(thread_id), durability=self.durability)

    def resume(self, graph: Any, answer: Any, thread_id: str) -> State:
        command = Command(resume=answer)
        return graph.invoke(command, self._config(thread_id), durability=self.durability)

    def history(self, graph: Any, thread_id: str) -> list[Any]:
        return list(graph.get_state_history(self._config(thread_id)))

    def saver_list(self, saver: Any, thread_id: str) -> list[Any]:
        # checkpoint_ns as the graph passes it: without it the saver's per-checkpoint writes
        # query cannot use its primary key and listing is ~3x slower.
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        return list(saver.list(config))
