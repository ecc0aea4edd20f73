"""What deciding a review sets in motion: the nodes that may run next, read from the graph.

The review's node resumes with the answer; where it goes then is the graph's edges, routers
(their path maps), joins and `Command` targets. Nodes declared with `side_effects=True` act on
the world outside the graph (pay, mail, call an API), so they are flagged before anyone decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from approvals.models import ReviewRequest
from orchestration.spec import ANYWHERE
from orchestration.types import END


@dataclass(frozen=True, slots=True)
class NextNode:
    name: str
    side_effects: bool


@dataclass(frozen=True, slots=True)
class Consequence:
    node: str  # the node that resumes with the answer
    next_nodes: tuple[NextNode, ...]
    may_end: bool
    anywhere: bool  # a router without a path map, or a bare `Command`: any node may follow

    @property
    def side_effects(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.next_nodes if n.side_effects)


def consequence(review: ReviewRequest) -> Consequence | None:
    """None when the graph is not registered here or the node is not one of its own. A
    subgraph's node (`outer|inner`) is looked up in the subgraph: what follows it there, and,
    where the subgraph may end right after it, what follows `outer` in the graph around it."""
    from orchestration.runtime.registry import get_graph

    try:
        graph = get_graph(review.thread.graph_name)
    except Exception:  # noqa: BLE001  an unknown graph: the page says nothing rather than fail
        return None
    levels = _levels(graph.spec, (review.node or "").split("|"))
    if levels is None:
        return None
    nodes: list[NextNode] = []
    anywhere = False
    for prefix, spec, node in reversed(levels):  # the innermost graph first
        targets, loose = _targets(spec, node)
        anywhere = anywhere or loose
        nodes += [NextNode(prefix + t, bool(spec.nodes[t].side_effects))
                  for t in targets if t in spec.nodes]
        if END not in targets:
            return Consequence(review.node, tuple(nodes), False, anywhere)
    return Consequence(review.node, tuple(nodes), True, anywhere)


def _levels(spec: Any, path: list[str]) -> list[tuple[str, Any, str]] | None:
    """(name prefix, graph spec, node) for each graph along `path`, outermost first; None if
    a name is not a node there (or not a subgraph where the path goes on)."""
    from orchestration.pregel.subgraphs import SubgraphNode

    levels = []
    prefix = ""
    for depth, node in enumerate(path):
        if node not in spec.nodes:
            return None
        levels.append((prefix, spec, node))
        if depth < len(path) - 1:
            fn = spec.nodes[node].fn
            if not isinstance(fn, SubgraphNode):
                # a node that runs a child itself (child.invoke): its graph is not known here
                return levels[:1] if depth == 0 else None
            spec, prefix = fn.graph.spec, f"{prefix}{node}|"
    return levels


def _targets(spec: Any, node: str) -> tuple[list[str], bool]:
    found: list[str] = []
    anywhere = False

    def add(name: str) -> None:
        if name not in found:
            found.append(name)

    for t in spec.edges.get(node, ()):
        add(t)
    for branch in spec.branches.get(node, ()):
        targets = branch.targets()
        if targets == ANYWHERE:
            anywhere = True
        else:
            for t in targets:
                add(t)
    goto = spec.nodes[node].goto_targets
    if goto == ANYWHERE:
        anywhere = True
    else:
        for t in goto:
            add(t)
    for sources, target in spec.joins:
        if node in sources:
            add(target)
    if not found and not anywhere:
        add(END)  # a node without outgoing edges finishes the thread
    return found, anywhere
