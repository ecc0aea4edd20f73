"""The chunks of the stream modes that describe the run itself, shaped as LangGraph's:
`checkpoints` (each checkpoint as saved), `tasks` (a task's start and its result) and `debug`
(both, wrapped as `{"type", "step", "timestamp", "payload"}`). Pure functions: the loop
builds them only when one of these modes was asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from orchestration.pregel.effects import Emit
from orchestration.pregel.plan import (
    INTERRUPT,
    NO_ARG,
    NO_UPDATE,
    Head,
    Outcome,
    Task,
    now,
    plan_tasks,
)

if TYPE_CHECKING:
    from orchestration.checkpoint.base import CheckpointConfig

# Modes whose chunks come from this module.
RUN_MODES = frozenset({"checkpoints", "tasks", "debug"})


def config_dict(config: CheckpointConfig | None) -> dict[str, Any] | None:
    return None if config is None else {"configurable": config.configurable}


def checkpoint_payload(head: Head) -> dict[str, Any]:
    checkpoint, metadata = head.checkpoint, head.metadata
    return {
        "config": config_dict(head.config),
        "parent_config": config_dict(head.parent),
        "values": dict(checkpoint.values),
        "metadata": {"source": metadata.source, "step": metadata.step, **metadata.extra},
        "next": list(checkpoint.next),
        "tasks": [
            {"id": t.id, "name": t.node, "interrupts": (), "state": None}
            for t in plan_tasks(checkpoint)
        ],
    }


def task_payload(task: Task, arg: Any) -> dict[str, Any]:
    return {"id": task.id, "name": task.node, "input": arg, "triggers": ()}


def task_result_payload(outcome: Outcome) -> dict[str, Any]:
    interrupt = outcome.interrupt
    return {
        "id": outcome.task.id,
        "name": outcome.task.node,
        "error": outcome.error,
        "result": dict(outcome.update or {}),
        "interrupts": (
            [] if interrupt is None else [{"value": interrupt.value, "id": interrupt.id}]
        ),
    }


def _debug(kind: str, step: int, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"step": step, "timestamp": now().isoformat(), "type": kind, "payload": payload}


def checkpoint_chunks(modes: frozenset[str], head: Head) -> Iterator[Emit]:
    if "checkpoints" in modes or "debug" in modes:
        payload = checkpoint_payload(head)
        if "checkpoints" in modes:
            yield Emit("checkpoints", payload)
        if "debug" in modes:
            yield Emit("debug", _debug("checkpoint", head.metadata.step, payload))


def task_chunks(
    modes: frozenset[str], work: list[tuple[Task, Any, list[Any]]], step: int
) -> Iterator[Emit]:
    for task, arg, _ in work:
        payload = task_payload(task, arg)
        if "tasks" in modes:
            yield Emit("tasks", payload)
        if "debug" in modes:
            yield Emit("debug", _debug("task", step, payload))


def result_chunks(modes: frozenset[str], outcomes: list[Outcome], step: int) -> Iterator[Emit]:
    for outcome in outcomes:
        if not outcome.fresh:
            continue  # recovered from pending writes: its result was streamed when it ran
        payload = task_result_payload(outcome)
        if "tasks" in modes:
            yield Emit("tasks", payload)
        if "debug" in modes:
            yield Emit("debug", _debug("task_result", step, payload))


def update_chunks(outcomes: list[Outcome]) -> Iterator[Emit]:
    """One `{node: update}` chunk per task, as LangGraph streams them (three `Send` tasks of
    one node are three chunks)."""
    for o in outcomes:
        update = o.update
        yield Emit("updates", {o.task.node: None if update is NO_UPDATE else update})


def interrupt_value_chunk(values: Mapping[str, Any], interrupts: tuple[Any, ...]) -> Emit:
    """`values` mode ends a paused run with the state and why it paused, as LangGraph's."""
    return Emit("values", {**values, INTERRUPT: interrupts})


__all__ = [
    "NO_ARG",
    "NO_UPDATE",
    "RUN_MODES",
    "checkpoint_chunks",
    "checkpoint_payload",
    "config_dict",
    "interrupt_value_chunk",
    "result_chunks",
    "task_chunks",
    "task_result_payload",
    "update_chunks",
]
