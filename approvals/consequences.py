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
    """None when the graph is not registered here or the node is not one of its own (a
    subgraph's node `outer|inner` is looked up as `outer`)."""
    from orchestration.runtime.registry import get_graph

    try:
        graph = get_graph(review.thread.graph_name)
    except Exception:  # noqa: BLE001  an unknown graph: the page says nothing rather than fail
        return None
    spec = graph.spec
    node = (review.node or "").split("|", 1)[0]
    if node not in spec.nodes:
        return None
    targets, anywhere = _targets(spec, node)
    nodes = tuple(
        NextNode(t, bool(spec.nodes[t].side_effects)) for t in targets if t in spec.nodes
    )
    return Consequence(node, nodes, END in targets, anywhere)


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
