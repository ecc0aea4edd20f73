"""`batch`, `abatch` and `with_config`: the Runnable methods LangGraph's compiled graph has
and LangGraph programs call (`graph.batch(inputs, configs)`, `graph.with_config(...)`).

A batch runs each input as its own `invoke`, concurrently (at most `max_concurrency` of the
config at a time, as LangChain does), and returns the results in the inputs' order. A config
is one for every input or a list, one per input. With `return_exceptions=True` an input that
failed has its exception in its place; otherwise the first failure, in the inputs' order, is
raised once every run has ended (none is left running behind the caller's back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from orchestration.checkpoint.base import CheckpointConfig

# LangChain's default when the config names no `max_concurrency`: one thread per input, up
# to this many (its executor's default is the CPU count plus four).
DEFAULT_CONCURRENCY = 8


def merged_config(bound: Mapping[str, Any], config: Any) -> Any:
    """`config` over the config bound by `with_config`: its `configurable` keys added to the
    bound ones, its other keys replacing them (as LangChain merges configs)."""
    if not bound:
        return config
    if config is None:
        return dict(bound)
    given = dict(config) if isinstance(config, Mapping | CheckpointConfig) else None
    if given is None:  # not a config we can merge: the call's own, as it is
        return config
    configurable = {**(bound.get("configurable") or {}), **(given.get("configurable") or {})}
    return {**bound, **given, "configurable": configurable}


def configs_for(inputs: Sequence[Any], config: Any) -> list[Any]:
    if isinstance(config, list):
        if len(config) != len(inputs):
            raise ValueError(f"batch got {len(inputs)} inputs and {len(config)} configs; give "
                             "one config for all of them or one per input")
        return config
    return [config] * len(inputs)


def _concurrency(configs: Sequence[Any], count: int) -> int:
    limits = [c.get("max_concurrency") for c in configs if isinstance(c, Mapping)]
    given = next((n for n in limits if isinstance(n, int) and n > 0), None)
    return max(1, min(count, given or DEFAULT_CONCURRENCY))


def _settle(outcomes: list[tuple[bool, Any]], return_exceptions: bool) -> list[Any]:
    if not return_exceptions:
        for ok, value in outcomes:
            if not ok:
                raise value
    return [value for _, value in outcomes]


def run_batch(invoke: Callable[..., Any], inputs: Sequence[Any], config: Any,
              return_exceptions: bool, kwargs: Mapping[str, Any]) -> list[Any]:
    configs = configs_for(inputs, config)

    def one(pair: tuple[Any, Any]) -> tuple[bool, Any]:
        try:
            return True, invoke(pair[0], pair[1], **kwargs)
        except Exception as error:  # noqa: BLE001 - settled below, in the inputs' order
            return False, error

    if not inputs:
        return []
    with ThreadPoolExecutor(_concurrency(configs, len(inputs)),
                            thread_name_prefix="stepwise-batch") as pool:
        outcomes = list(pool.map(one, zip(inputs, configs, strict=True)))
    return _settle(outcomes, return_exceptions)


async def run_abatch(ainvoke: Callable[..., Awaitable[Any]], inputs: Sequence[Any],
                     config: Any, return_exceptions: bool, kwargs: Mapping[str, Any]
                     ) -> list[Any]:
    configs = configs_for(inputs, config)
    limit = asyncio.Semaphore(_concurrency(configs, len(inputs)) if inputs else 1)

    async def one(value: Any, cfg: Any) -> tuple[bool, Any]:
        async with limit:
            try:
                return True, await ainvoke(value, cfg, **kwargs)
            except Exception as error:  # noqa: BLE001 - settled below, in the inputs' order
                return False, error

    outcomes = await asyncio.gather(*(one(v, c) for v, c in zip(inputs, configs, strict=True)))
    return _settle(list(outcomes), return_exceptions)
