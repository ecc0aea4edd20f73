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

from bench import nodes
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


class LangGraphAdapter:
    label = "LangGraph"

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

    def linear(self, saver: Any) -> Any:
        graph = StateGraph(LinearState)
        names = nodes.linear_node_names()
        for name in names:
            graph.add_node(name, nodes.linear_step)
        graph.add_edge(START, names[0])
        for a, b in zip(names, names[1:], strict=False):
            graph.add_edge(a, b)
        graph.add_edge(names[-1], END)
        return graph.compile(checkpointer=saver)

    def fanout(self, saver: Any) -> Any:
        graph = StateGraph(FanState)
        graph.add_node("dispatch", nodes.dispatch)
        graph.add_node("worker", nodes.worker)
        graph.add_node("join", nodes.join)
        graph.add_edge(START, "dispatch")
        graph.add_conditional_edges("dispatch", nodes.make_fan_out(Send), ["worker"])
        graph.add_edge("worker", "join")
        graph.add_conditional_edges("join", nodes.make_after_join(END), ["dispatch", END])
        return graph.compile(checkpointer=saver)

    def appender(self, saver: Any, payloads: list[str]) -> Any:
        graph = StateGraph(AppendState)
        graph.add_node("append", nodes.make_append(payloads))
        graph.add_edge(START, "append")
        graph.add_conditional_edges("append", nodes.make_after_append(END), ["append", END])
        return graph.compile(checkpointer=saver)

    def asker(self, saver: Any) -> Any:
        graph = StateGraph(AskState)
        graph.add_node("ask", nodes.make_ask(interrupt))
        graph.add_edge(START, "ask")
        graph.add_edge("ask", END)
        return graph.compile(checkpointer=saver)

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
