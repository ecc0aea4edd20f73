"""LangGraph-shaped configs: the `{"configurable": {"thread_id": ...}}` dicts LangGraph code
passes everywhere, turned into a `CheckpointConfig` plus the run's config that a node with a
`config` parameter (or `get_config()`) receives.

Kept apart from the loop: the loop only carries a `RunContext` (`context.py`) to the tasks it
runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from orchestration.checkpoint.base import CheckpointConfig, as_checkpoint_config
from orchestration.interrupts import current_task

if TYPE_CHECKING:
    from orchestration.interrupts import TaskScope

# Keys of `configurable` that name where a call runs; every other key is the caller's (e.g.
# `user_id`) and reaches nodes unchanged.
_ADDRESS_KEYS = ("thread_id", "checkpoint_id", "checkpoint_ns")

# Supersteps a call may run when it names no `recursion_limit` (LangGraph: 25): review
# workflows loop legitimately. Subgraphs take their parent call's limit.
DEFAULT_RECURSION_LIMIT = 10_000


class RunnableConfig(TypedDict, total=False):
    """LangChain's `RunnableConfig`, as far as a graph reads it."""

    configurable: dict[str, Any]
    recursion_limit: int
    tags: list[str]
    metadata: dict[str, Any]
    run_name: str
    run_id: Any
    max_concurrency: int | None
    callbacks: Any


def split_config(config: Any) -> tuple[CheckpointConfig | None, dict[str, Any]]:
    """(thread/checkpoint, the rest of a LangGraph config dict) for a call's `config`."""
    if config is None:
        return None, {}
    if isinstance(config, CheckpointConfig):
        return config, {}
    if isinstance(config, Mapping):
        configurable = config.get("configurable") or {}
        if configurable.get("thread_id") is None:
            # A config without a thread (e.g. only `recursion_limit` or `user_id`): fine for a
            # graph without a saver, as in LangGraph.
            return None, dict(config)
        return as_checkpoint_config(config), dict(config)
    return as_checkpoint_config(config), {}


def run_config(
    thread_id: str | None, given: Mapping[str, Any], recursion_limit: int
) -> dict[str, Any]:
    """The config nodes see: the caller's dict with `configurable` holding the thread and
    the caller's extra keys, and the effective `recursion_limit`."""
    configurable = dict(given.get("configurable") or {})
    if thread_id is not None:
        configurable["thread_id"] = thread_id
    configurable.setdefault("checkpoint_ns", "")
    out = {k: v for k, v in given.items() if k != "configurable"}
    out["configurable"] = configurable
    out["recursion_limit"] = recursion_limit
    return out


def wants_config(fn: Callable[..., Any]) -> bool:
    """Whether `fn` declares a `config` parameter after the state (LangGraph passes the run's
    config to such a node)."""
    target = fn
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects count too
    if not inspect.isfunction(fn) and not inspect.ismethod(fn) and call is not None:
        target = call
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return False
    return any(p.name == "config" for p in params[1:])


# `configurable` keys a checkpoint's metadata does not take from the config: they name where
# the call runs (LangGraph's EXCLUDED_METADATA_KEYS).
_NOT_CHECKPOINT_METADATA = frozenset((
    "thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map", "langgraph_step",
    "langgraph_node", "langgraph_triggers", "langgraph_path", "langgraph_checkpoint_ns",
))
# Parts of a key name that mark a secret: such a value is never copied into checkpoint
# metadata, which the savers keep and the web app shows (LangGraph copies it; see
# docs/langgraph.md).
_SECRET_MARKS = ("key", "token", "secret", "password", "auth")


def checkpoint_extra(given: Mapping[str, Any]) -> dict[str, Any]:
    """What a call's config adds to the metadata of each checkpoint it writes, as LangGraph's
    savers add it: the config's `metadata`, then its `configurable` keys with a plain value
    (str, int, float, bool) that the metadata does not set, except those naming where the call
    runs, engine-internal ones (`__...`) and, unlike LangGraph, secrets."""
    metadata = given.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"config['metadata'] must be a dict, not {metadata!r:.80}")
    copied = {
        key: value for key, value in (given.get("configurable") or {}).items()
        if isinstance(key, str) and isinstance(value, str | int | float | bool)
        and key not in _NOT_CHECKPOINT_METADATA and not key.startswith("__")
        and not any(mark in key.casefold() for mark in _SECRET_MARKS)
    }
    return {**copied, **metadata}


# `configurable` keys LangGraph also shows in a node's `config["metadata"]` (when set).
_PROPAGATED = ("thread_id", "checkpoint_id", "checkpoint_ns", "task_id", "run_id")


def task_keys(scope: TaskScope) -> dict[str, Any]:
    """LangGraph's `langgraph_*` metadata of the task running in `scope` (what a node's
    `config["metadata"]` and the `messages` stream name it by)."""
    task = scope.task
    ns = scope.context.checkpoint_ns if scope.context is not None else ""
    return {
        "langgraph_step": scope.step,
        "langgraph_node": task.node,
        "langgraph_triggers": (
            ("__pregel_push",) if task.push >= 0 else (f"branch:to:{task.node}",)
        ),
        "langgraph_path": task.path,
        "langgraph_checkpoint_ns": f"{ns}|{task.node}:{task.id}" if ns
        else f"{task.node}:{task.id}",
    }


def task_config(scope: TaskScope) -> dict[str, Any]:
    """The config a node receives (its `config` parameter, `get_config()`): the run's, with
    LangGraph's `metadata` for this task: the caller's metadata, the thread and namespace,
    and the `langgraph_*` keys. Built when a node first asks (most never do), once per task."""
    if scope.config is None:
        base = scope.context.config if scope.context is not None else {"configurable": {}}
        metadata = dict(base.get("metadata") or {})
        configurable = base.get("configurable") or {}
        for key in _PROPAGATED:
            if key not in metadata and configurable.get(key):
                metadata[key] = configurable[key]
        metadata.update(task_keys(scope))
        scope.config = {**base, "metadata": metadata}
    return scope.config


def get_config() -> dict[str, Any]:
    """The config of the run calling it (inside a node), as LangGraph's `get_config()`."""
    scope = current_task.get()
    if scope is None or scope.context is None:
        raise RuntimeError("get_config() can only be called inside a node while a graph runs it")
    return task_config(scope)


__all__ = [
    "RunnableConfig",
    "as_checkpoint_config",
    "checkpoint_extra",
    "get_config",
    "run_config",
    "split_config",
    "task_config",
    "task_keys",
    "wants_config",
]
