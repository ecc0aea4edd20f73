"""Checkpoint namespaces: a subgraph's checkpoints live in its parent's thread under
`checkpoint_ns` (the node path, `"outer|inner"`). Savers read and write them like the root's
and filter on the namespace; the root (`""`) path stays exactly as fast as before, because a
tuple read back is only rebuilt when its namespace is not the root's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from orchestration.checkpoint.base import CheckpointConfig, CheckpointTuple

SEPARATOR = "|"


TASK_SEPARATOR = ":"


def child_ns(parent_ns: str, node: str, task_id: str | None = None) -> str:
    """The namespace of a subgraph run by `node` inside `parent_ns`. A `Send` task's run gets
    its task id too (`"node:<task id>"`, LangGraph's form): several such tasks of one node run
    side by side in a superstep, and each needs a chain of its own."""
    segment = f"{node}{TASK_SEPARATOR}{task_id}" if task_id else node
    return f"{parent_ns}{SEPARATOR}{segment}" if parent_ns else segment


def node_of(ns: str) -> str:
    """The node that runs the innermost subgraph of `ns`: `"outer|worker:1f2e"` -> `"worker"`."""
    return ns.rsplit(SEPARATOR, 1)[-1].partition(TASK_SEPARATOR)[0]


def ns_tuple(ns: str) -> tuple[str, ...]:
    """`"outer|inner"` -> `("outer", "inner")`, as `stream(subgraphs=True)` names chunks."""
    return tuple(ns.split(SEPARATOR)) if ns else ()


# A saver that keys rows by one thread column stores a namespace's checkpoints under
# `storage_key`: the thread id, this separator, the namespace. Thread ids may not contain it
# (`CheckpointConfig` refuses them), so no root thread can collide with a namespace.
KEY_SEPARATOR = "\x1f"


def storage_key(config: CheckpointConfig) -> str:
    ns = config.checkpoint_ns
    return f"{config.thread_id}{KEY_SEPARATOR}{ns}" if ns else config.thread_id


def config_of_key(key: str) -> CheckpointConfig:
    """The thread and namespace a `storage_key` stands for."""
    thread_id, _, ns = key.partition(KEY_SEPARATOR)
    return CheckpointConfig(thread_id, checkpoint_ns=ns)


def key_range(thread_id: str) -> tuple[str, str]:
    """(low, high): every namespace key of `thread_id` sorts strictly between them."""
    return f"{thread_id}{KEY_SEPARATOR}", f"{thread_id}{chr(ord(KEY_SEPARATOR) + 1)}"


def rehome(
    tuples: Sequence[CheckpointTuple], config: CheckpointConfig
) -> list[CheckpointTuple]:
    """`tuples` read from `config`'s namespace, their configs naming its thread and namespace
    (a saver read them under the storage key). The root's are returned as they are."""
    ns = config.checkpoint_ns
    if not ns:
        return list(tuples)
    thread_id = config.thread_id

    def home(c: CheckpointConfig) -> CheckpointConfig:
        return CheckpointConfig(thread_id, c.checkpoint_id, ns)

    return [
        replace(
            t,
            config=home(t.config),
            parent_config=None if t.parent_config is None else home(t.parent_config),
        )
        for t in tuples
    ]


def config_in(config: CheckpointConfig, checkpoint_id: str) -> CheckpointConfig:
    return CheckpointConfig(config.thread_id, checkpoint_id, config.checkpoint_ns)
