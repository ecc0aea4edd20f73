"""Node caching (LangGraph's `CachePolicy`): the tasks of a step whose node has a cache policy
and whose input's key the graph's cache holds take the writes stored there (`Outcome.cached`)
instead of running; the others run, and the writes of those that finished are stored.

A task resuming with answers always runs (its answers are not part of its input's key) and
stores what it writes, as LangGraph's: a later task with the same input takes that answer
without asking. A task that failed or paused stores nothing, so a later run tries it again.

A cache that cannot be read or written is logged and the tasks run as if it were empty: a
cache saves work, it never decides whether a run succeeds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestration.pregel.effects import Core, Execute, RunSettings
from orchestration.pregel.plan import NO_UPDATE, Outcome, decode_goto, encode_goto

if TYPE_CHECKING:
    from orchestration.cache import FullKey, Namespace
    from orchestration.pregel.plan import Task
    from orchestration.spec import NodeSpec

log = logging.getLogger(__name__)

WRITES = "__writes__"  # the namespaces' first part: cached task writes


def namespace(node: NodeSpec) -> Namespace:
    """A node's cache namespace: its function's identity and its name, as LangGraph keys it
    (two graphs sharing one cache and one function share its entries)."""
    fn = node.fn
    ident = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    return (WRITES, ident, node.name)


def _key(node: NodeSpec, arg: Any) -> FullKey:
    policy = node.cache_policy
    assert policy is not None
    raw = policy.key_func(arg)
    digest = hashlib.blake2b(raw.encode() if isinstance(raw, str) else raw, digest_size=16)
    return namespace(node), digest.hexdigest()


def run_work(
    settings: RunSettings, work: Sequence[tuple[Task, Any, list[Any]]], step: int,
    edits: int = 0,
) -> Core:
    """`Execute(work)`, answered from the graph's cache where it can: the outcomes in `work`'s
    order."""
    spec, cache = settings.spec, settings.cache
    keys: dict[int, FullKey] = {}
    if cache is not None:
        for i, (task, arg, _) in enumerate(work):
            node = spec.nodes[task.node]
            if node.cache_policy is not None:
                keys[i] = _key(node, arg)
    if not keys:
        return (yield Execute(spec, list(work), settings.thread_id, step, settings.context,
                              edits))
    assert cache is not None
    # A task resuming with answers runs (they are not in its key); what it writes is stored.
    asked = {i: key for i, key in keys.items() if not work[i][2]}
    try:
        found = cache.get(list(dict.fromkeys(asked.values()))) if asked else {}
    except Exception:
        log.warning("the node cache could not be read; the tasks run", exc_info=True)
        found = {}
    outcomes: list[Outcome | None] = [None] * len(work)
    for i, key in asked.items():
        stored = found.get(key)
        if stored is not None:
            task = work[i][0]
            update = stored["update"]
            outcomes[i] = Outcome(
                task, update=NO_UPDATE if update is None else update,
                goto=[decode_goto(g) for g in stored["goto"]], cached=True,
            )
    run = [i for i in range(len(work)) if outcomes[i] is None]
    results: list[Outcome] = []
    if run:
        results = yield Execute(
            spec, [work[i] for i in run], settings.thread_id, step, settings.context, edits
        )
    fresh: dict[FullKey, tuple[Any, int | None]] = {}
    for i, outcome in zip(run, results, strict=True):
        outcomes[i] = outcome
        if i in keys and outcome.error is None and outcome.interrupt is None:
            ttl = spec.nodes[outcome.task.node].cache_policy.ttl  # type: ignore[union-attr]
            update = None if outcome.update is NO_UPDATE else outcome.update
            value = {"update": update, "goto": [encode_goto(g) for g in outcome.goto]}
            fresh[keys[i]] = (value, ttl)
    if fresh:
        try:
            cache.set(fresh)
        except Exception:
            log.warning("the node cache could not be written", exc_info=True)
    return [o for o in outcomes if o is not None]
