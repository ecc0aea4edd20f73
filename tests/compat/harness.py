"""Runs one LangGraph program on LangGraph, or on Stepwise with only its imports changed, and
turns what it observed into plain data that both must agree on.

A program (`programs/*.py`) is written in LangGraph's API as its documentation teaches it and
defines `main(checkpointer) -> list[(label, observed)]`. For Stepwise, its source is read and
every import line naming a LangGraph module is rewritten per `differences.IMPORTS` (the import
table of docs/langgraph.md); nothing else in the text changes.

"The same" means equal after `canonical()`, which removes only what `differences.py` lists
as intentionally different (ids, timestamps, the extra input checkpoint, message classes).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from differences import (
    IMPORTS,
    KEPT_IMPORTS,
    canonical_message,
    canonical_metadata,
    is_langgraph_input_step,
)

PROGRAMS = Path(__file__).parent / "programs"
# What canonical() returns for something differences.py drops (LangGraph's extra checkpoint).
DROP = "<dropped>"
_IMPORT = re.compile(r"^(\s*)from\s+([\w.]+)\s+import\s+", re.MULTILINE)


def rewrite_imports(source: str) -> str:
    """The program's text with its LangGraph import lines pointed at Stepwise."""

    def swap(match: re.Match[str]) -> str:
        module = match.group(2)
        if module not in IMPORTS:
            if module in KEPT_IMPORTS:
                return match.group(0)
            if module.split(".")[0] in ("langgraph", "langchain_core"):
                raise AssertionError(f"no Stepwise import for {module!r}: add it to IMPORTS")
            return match.group(0)
        return f"{match.group(1)}from {IMPORTS[module]} import "

    return _IMPORT.sub(swap, source)


def load(name: str, engine: str) -> types.ModuleType:
    """Program `name` as a module for `engine` ("langgraph" or "stepwise")."""
    source = (PROGRAMS / f"{name}.py").read_text()
    if engine == "stepwise":
        source = rewrite_imports(source)
    module = types.ModuleType(f"compat_{name}_{engine}")
    module.__file__ = str(PROGRAMS / f"{name}.py")
    # TypedDict / dataclass annotations are resolved through sys.modules.
    sys.modules[module.__name__] = module
    if str(PROGRAMS) not in sys.path:
        sys.path.insert(0, str(PROGRAMS))
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def canonical(value: Any) -> Any:
    """Plain data for comparison; see differences.py for what is dropped and why."""
    name = type(value).__name__
    if isinstance(value, BaseException):
        return {"raised": name}
    if name == "Interrupt" and hasattr(value, "value"):
        return {"interrupt": canonical(value.value)}
    if any(c.__name__ == "StateSnapshot" for c in type(value).__mro__):  # or a subclass
        if value.metadata is not None and is_langgraph_input_step(value):
            return DROP
        return {
            "values": canonical(value.values),
            "next": list(value.next),
            "interrupts": [canonical(i) for i in value.interrupts],
            "metadata": canonical_metadata(value.metadata),
        }
    if name == "Send":
        return {"send": value.node, "arg": canonical(value.arg)}
    message = canonical_message(value)
    if message is not None:
        return message
    if hasattr(value, "configurable") and hasattr(value, "thread_id"):
        return "<config>"
    if isinstance(value, Mapping):
        return _canonical_mapping(value)
    if isinstance(value, list | tuple):
        items = [canonical(v) for v in value]
        if len(items) == 2 and isinstance(value[0], str) and items[1] == DROP:
            return DROP  # a (mode, chunk) pair whose chunk is dropped
        return [v for v in items if v != DROP]
    if isinstance(value, set | frozenset):
        return sorted(canonical(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return canonical(value.model_dump())
    return value


def _canonical_mapping(value: Mapping[str, Any]) -> Any:
    keys = set(value)
    if "configurable" in keys and keys <= {"configurable", "recursion_limit", "callbacks"}:
        return "<config>"
    if keys == {"step", "timestamp", "type", "payload"}:  # a debug event
        if value["type"] == "checkpoint" and is_langgraph_input_step(value["payload"]):
            return DROP
        return {"debug": value["type"], "payload": canonical(value["payload"])}
    if {"config", "parent_config", "values", "metadata", "next", "tasks"} <= keys:
        if is_langgraph_input_step(value):  # a checkpoint chunk
            return DROP
        return {
            "checkpoint": canonical(value["values"]),
            "next": list(value["next"]),
            "metadata": canonical_metadata(value["metadata"]),
            "tasks": sorted(t["name"] for t in value["tasks"]),
        }
    if {"id", "name", "input", "triggers"} <= keys:  # a task starts
        return {"task": value["name"], "input": canonical(value["input"])}
    if {"id", "name", "error", "result", "interrupts"} <= keys:  # a task's result
        error = value["error"]
        return {
            "task_result": value["name"],
            "error": None if error is None else type(error).__name__,
            "result": canonical(value["result"]),
            "interrupts": [canonical(i.get("value")) for i in value["interrupts"]],
        }
    return {str(k): _canonical_entry(k, v) for k, v in value.items()}


def _canonical_entry(key: Any, value: Any) -> Any:
    # Parallel tasks' interrupts reach LangGraph's `__interrupt__` in the order its threads
    # finish, which varies from run to run (seen in CI: b before a); one task raises one at a
    # time, so sorting loses no order either engine promises.
    if key == "__interrupt__" and isinstance(value, list | tuple):
        return sorted((canonical(v) for v in value), key=repr)
    return canonical(value)


def observe(name: str, engine: str, checkpointer: Any) -> list[Any]:
    """Run program `name` and return its canonical observations (None entries dropped)."""
    module = load(name, engine)
    observed = module.main(checkpointer)
    return [(label, canonical(value)) for label, value in observed]
