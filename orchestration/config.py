"""LangGraph-shaped configs: the `{"configurable": {"thread_id": ...}}` dicts LangGraph code
passes everywhere, turned into a `CheckpointConfig` plus the run's config that a node with a
`config` parameter (or `get_config()`) receives.

Kept apart from the loop: the loop only carries a `RunContext` (`context.py`) to the tasks it
runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from orchestration.checkpoint.base import CheckpointConfig, as_checkpoint_config
from orchestration.interrupts import current_task

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


def get_config() -> dict[str, Any]:
    """The config of the run calling it (inside a node), as LangGraph's `get_config()`."""
    scope = current_task.get()
    if scope is None or scope.context is None:
        raise RuntimeError("get_config() can only be called inside a node while a graph runs it")
    return scope.context.config


__all__ = [
    "RunnableConfig",
    "as_checkpoint_config",
    "get_config",
    "run_config",
    "split_config",
    "wants_config",
]
