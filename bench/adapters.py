"""The one interface the workloads drive, implemented once per engine (see langgraph_side.py
and stepwise_side.py), so a workload is written once and runs identically on both."""

from __future__ import annotations

from typing import Any, Protocol

from bench.nodes import State


class EngineUnavailable(RuntimeError):
    """The engine cannot be imported (yet); its side of every workload is skipped."""


class Adapter(Protocol):
    label: str

    def versions(self) -> dict[str, str]: ...

    def memory_saver(self) -> Any: ...

    def sqlite_saver(self, path: str) -> Any: ...

    def close_saver(self, saver: Any) -> None: ...

    def linear(self, saver: Any) -> Any: ...

    def fanout(self, saver: Any) -> Any: ...

    def appender(self, saver: Any, payloads: list[str]) -> Any: ...

    def asker(self, saver: Any) -> Any: ...

    def invoke(self, graph: Any, input: State, thread_id: str) -> State: ...

    def resume(self, graph: Any, answer: Any, thread_id: str) -> State: ...

    def history(self, graph: Any, thread_id: str) -> list[Any]: ...

    def saver_list(self, saver: Any, thread_id: str) -> list[Any]: ...
