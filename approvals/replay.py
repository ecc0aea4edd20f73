"""What a branch from a past checkpoint will run again, for the fork and "decide differently"
forms: the nodes that already ran after that checkpoint, and those of them (or of the nodes
it may reach) declared with side effects (`add_node(..., side_effects=True)`)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import TextField
from django.db.models.functions import Cast

from orchestration.runtime.models import Checkpoint, Thread
from orchestration.runtime.registry import GraphRegistryError, get_graph
from orchestration.spec import ANYWHERE, GraphSpec
from orchestration.types import END


@dataclass(frozen=True, slots=True)
class RerunNode:
    name: str
    side_effects: bool
    ran_before: bool  # it ran after this checkpoint on a branch that exists already


@dataclass(frozen=True, slots=True)
class ReplayPreview:
    nodes: tuple[RerunNode, ...]

    @property
    def side_effects(self) -> tuple[RerunNode, ...]:
        return tuple(n for n in self.nodes if n.side_effects)

    @property
    def repeated_side_effects(self) -> tuple[RerunNode, ...]:
        return tuple(n for n in self.nodes if n.side_effects and n.ran_before)


def replay_preview(thread: Thread, checkpoint_id: str) -> ReplayPreview:
    """Nodes a branch from `checkpoint_id` may run: first those that ran after it before
    (in the order they first ran), then the rest it can reach in the graph."""
    try:
        spec: GraphSpec | None = get_graph(thread.graph_name).spec
    except GraphRegistryError:
        spec = None
    # JSON columns as their text, decoded only where read: the start's `next`, and who wrote
    # each checkpoint after it (decoding both for every row was most of a long thread's fork
    # page: 10,000 rows, 20,000 JSON values)
    rows = list(
        Checkpoint.objects.filter(thread=thread, checkpoint_ns="")
        .annotate(written=Cast("written_by", TextField()), next_text=Cast("next", TextField()))
        .values_list("pk", "checkpoint_id", "parent_id", "source", "written", "next_text")
    )
    start = next((r for r in rows if r[1] == checkpoint_id), None)
    if start is None:
        return ReplayPreview(())
    ran = _ran_after(start[0], rows)
    reachable = _reachable(spec, _json_list(start[5])) if spec is not None else []
    names = list(dict.fromkeys([*ran, *reachable]))
    return ReplayPreview(tuple(
        RerunNode(name, _has_side_effects(spec, name), name in ran) for name in names
    ))


def _ran_after(start_pk: int, rows: list[tuple]) -> list[str]:
    """Nodes that wrote a checkpoint descending from `start_pk`, on any branch."""
    children: dict[int, list[tuple]] = {}
    for row in rows:
        children.setdefault(row[2], []).append(row)
    found: dict[str, None] = {}  # in the order they first ran
    seen: set[str | None] = set()  # `written_by` texts already counted: a thread repeats a few
    queue = deque(children.get(start_pk, ()))
    while queue:
        row = queue.popleft()
        if row[3] == "loop" and row[4] not in seen:
            seen.add(row[4])
            found.update(dict.fromkeys(str(n) for n in _json_list(row[4])))
        queue.extend(children.get(row[0], ()))
    return list(found)


def _json_list(text: str | None) -> tuple[Any, ...]:
    """A JSON column's text holding a list (or null) as a tuple."""
    return tuple(json.loads(text) or ()) if text else ()


def _reachable(spec: GraphSpec, first: Iterable[str]) -> list[str]:
    seen: list[str] = []
    queue = deque(n for n in first if n in spec.nodes)
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.append(node)
        queue.extend(t for t in _targets(spec, node) if t not in seen)
    return seen


def _targets(spec: GraphSpec, node: str) -> list[str]:
    out = list(spec.edges.get(node, ()))
    for branch in spec.branches.get(node, ()):
        targets = branch.targets()
        out.extend(spec.nodes if targets == ANYWHERE else targets)
    goto = spec.nodes[node].goto_targets
    out.extend(spec.nodes if goto == ANYWHERE else goto)
    out.extend(target for sources, target in spec.joins if node in sources)
    return [t for t in out if t != END and t in spec.nodes]


def _has_side_effects(spec: GraphSpec | None, name: str) -> bool:
    node = spec.nodes.get(name) if spec is not None else None
    return bool(node is not None and node.side_effects)
