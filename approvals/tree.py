"""Lay out a thread's checkpoint tree for an SVG drawing (pure: rows in, coordinates out).

One row per checkpoint in creation order (ids sort by time). A checkpoint's first child keeps
its parent's lane; every later child (a fork, an edit, a re-answered review) opens a new lane,
so branches show as columns, like `git log --graph`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

ROW_HEIGHT = 30
LANE_WIDTH = 22
MARGIN = 16
LABEL_GAP = 18


@dataclass(frozen=True, slots=True)
class TreeRow:
    id: str
    parent_id: str | None
    step: int
    source: str
    node: str
    time: datetime | None
    actor: str


@dataclass(frozen=True, slots=True)
class PlacedNode:
    row: TreeRow
    index: int
    lane: int
    x: int
    y: int
    is_head: bool
    is_pending: bool

    @property
    def label(self) -> str:
        parts = [f"step {self.row.step}", self.row.source]
        if self.row.node:
            parts.append(self.row.node)
        if self.row.time is not None:
            parts.append(self.row.time.strftime("%Y-%m-%d %H:%M:%S"))
        if self.row.actor:
            parts.append(f"by {self.row.actor}")
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class PlacedEdge:
    parent_id: str
    child_id: str
    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def path(self) -> str:
        """Straight down within a lane; a branch steps sideways just below its parent."""
        if self.x1 == self.x2:
            return f"M{self.x1},{self.y1} L{self.x2},{self.y2}"
        bend = self.y1 + ROW_HEIGHT // 2
        curve = f"C{self.x1},{bend} {self.x2},{self.y1} {self.x2},{bend}"
        return f"M{self.x1},{self.y1} {curve} L{self.x2},{self.y2}"


@dataclass(frozen=True, slots=True)
class TreeLayout:
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    lanes: int
    width: int
    height: int
    label_x: int

    def node(self, checkpoint_id: str) -> PlacedNode | None:
        return next((n for n in self.nodes if n.row.id == checkpoint_id), None)


def layout_tree(
    rows: Iterable[TreeRow],
    *,
    head_id: str | None = None,
    pending_ids: Collection[str] = (),
    char_width: float = 7.4,
) -> TreeLayout:
    ordered = sorted(rows, key=lambda r: r.id)
    known = {r.id for r in ordered}
    lane_of: dict[str, int] = {}
    has_child: set[str] = set()
    next_lane = 0
    nodes: list[PlacedNode] = []
    pos: dict[str, tuple[int, int]] = {}
    for index, row in enumerate(ordered):
        parent = row.parent_id if row.parent_id in known else None
        if parent is not None and parent not in has_child:
            lane = lane_of[parent]
        else:
            lane = next_lane
            next_lane += 1
        if parent is not None:
            has_child.add(parent)
        lane_of[row.id] = lane
        x = MARGIN + lane * LANE_WIDTH
        y = MARGIN + index * ROW_HEIGHT
        pos[row.id] = (x, y)
        nodes.append(
            PlacedNode(row, index, lane, x, y, row.id == head_id, row.id in pending_ids)
        )
    edges = tuple(
        PlacedEdge(n.row.parent_id, n.row.id, *pos[n.row.parent_id], n.x, n.y)
        for n in nodes
        if n.row.parent_id in pos
    )
    lanes = max(next_lane, 1)
    label_x = MARGIN + (lanes - 1) * LANE_WIDTH + LABEL_GAP
    # the widest label plus its HEAD / waiting marks, in the tree's monospace font
    longest = max((len(n.label) + 20 for n in nodes), default=0)
    return TreeLayout(
        nodes=tuple(nodes),
        edges=edges,
        lanes=lanes,
        width=label_x + int(longest * char_width) + MARGIN,
        height=MARGIN * 2 + max(len(nodes) - 1, 0) * ROW_HEIGHT,
        label_x=label_x,
    )
