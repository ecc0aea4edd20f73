"""The chunks of the stream modes that describe the run itself, shaped as LangGraph's:
`checkpoints` (each checkpoint as saved), `tasks` (a task's start and its result) and `debug`
(both, wrapped as `{"type", "step", "timestamp", "payload"}`). Pure functions: the loop
builds them only when one of these modes was asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
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
        if not outcome.fresh or outcome.cached:
            # recovered from pending writes, its result streamed when it ran; or taken from
            # the node cache, which LangGraph streams no result for
            continue
        payload = task_result_payload(outcome)
        if "tasks" in modes:
            yield Emit("tasks", payload)
        if "debug" in modes:
            yield Emit("debug", _debug("task_result", step, payload))


Keys = str | tuple[str, ...] | None  # `stream(output_keys=...)`: None is every field


def picked(keys: Keys, values: Mapping[str, Any]) -> Any:
    """`values` narrowed to `keys` as LangGraph's `output_keys` narrows a chunk: the fields
    there are of a list of names, the value (or None) of one name."""
    if isinstance(keys, str):
        return values.get(keys)
    return {name: values[name] for name in keys if name in values}  # type: ignore[union-attr]


def shows(keys: Keys, written: Iterable[str]) -> bool:
    """Whether a step that wrote `written` streams a `values` chunk: LangGraph streams one
    only when a field it shows changed."""
    if keys is None:
        return True
    shown = (keys,) if isinstance(keys, str) else keys
    return not set(shown).isdisjoint(written)


def update_chunks(outcomes: list[Outcome], keys: Keys = None) -> Iterator[Emit]:
    """One `{node: update}` chunk per task, as LangGraph streams them (three `Send` tasks of
    one node are three chunks); with `keys`, each update narrowed to them (None when the
    task wrote none of them)."""
    for o in outcomes:
        update = None if o.update is NO_UPDATE else o.update
        if isinstance(keys, str) and update is not None:
            update = update.get(keys)
        elif keys is not None and update is not None:  # in the update's own order
            update = {k: v for k, v in update.items() if k in keys} or None
        if o.cached:  # as LangGraph marks a task answered by the node cache
            yield Emit("updates", {o.task.node: update, "__metadata__": {"cached": True}})
        else:
            yield Emit("updates", {o.task.node: update})


def interrupt_value_chunk(
    values: Mapping[str, Any], interrupts: tuple[Any, ...], keys: Keys = None
) -> Emit:
    """`values` mode ends a paused run with the state and why it paused, as LangGraph's (with
    one key in `keys`, only why: there is no dict to put the field's value in)."""
    if keys is None:
        return Emit("values", {**values, INTERRUPT: interrupts})
    shown = {} if isinstance(keys, str) else picked(keys, values)
    return Emit("values", {**shown, INTERRUPT: interrupts})


__all__ = [
    "NO_ARG",
    "NO_UPDATE",
    "RUN_MODES",
    "checkpoint_chunks",
    "checkpoint_payload",
    "config_dict",
    "interrupt_value_chunk",
    "picked",
    "result_chunks",
    "shows",
    "task_chunks",
    "task_result_payload",
    "update_chunks",
]
