"""Lay out a thread's checkpoint tree as a list of rows, folding long stretches (pure: links in,
rows with lane drawings out).

One row per checkpoint in creation order (ids sort by time). A checkpoint's first child keeps
its parent's lane; every later child (a fork, an edit, a re-answered review) goes to another
lane, so branches show as columns, like `git log --graph`. That lane is the leftmost one with
nothing drawn in it from the parent's row down (a branch that ended above gives its lane
back): a thread forked again and again from its recent steps stays a few lanes wide instead of
one lane per fork ever made. A root, or a row whose parent is not stored, opens a new lane.

A thread can hold 10,000 checkpoints, so the page never draws them all. A `Fold` is a run of
consecutive rows drawn as one row; edges into, out of or through it are drawn to that row, so
the lanes stay continuous whatever is folded. The mechanism knows nothing about *why* rows are
folded: `stretch_folds` folds old, uneventful stretches; a subgraph's checkpoints can be
folded under their parent node the same way (a `Fold` with another `kind`), as long as they
are consecutive rows.

Every row is drawn on its own (its lane segments in row coordinates), so a live update can
append a row, and unfolding can replace one row by the rows it stood for, without redrawing
the rest.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

ROW_HEIGHT = 30
LANE_WIDTH = 22
MARGIN = 16
CENTER = ROW_HEIGHT // 2
# Lanes drawn side by side; every lane from the last of them on is drawn in that one, dashed
# (a bundle). Forked 40 times from older and older steps, a thread needs 40 lanes in creation
# order (each fork's line runs from its parent down to its row, all of them nested): drawn
# side by side they pushed each label 900 px right, and cut off, the newest rows had no dot.
DRAWN_LANES = 12
BUNDLE = DRAWN_LANES - 1


def lane_x(lane: int) -> int:
    """Where a lane is drawn: its own column, or the bundle's."""
    return MARGIN + min(lane, BUNDLE) * LANE_WIDTH

# stretch folding: rows kept visible at the end (where a live thread grows), the shortest
# stretch worth folding, how many rows one unfold reveals, and how many branch marks stay pinned
RECENT = 30
MIN_FOLD = 4
UNFOLD_CHUNK = 50
MAX_MARKS = 40


@dataclass(frozen=True, slots=True)
class Link:
    """The part of a checkpoint the layout needs (cheap to load for every checkpoint)."""

    id: str
    parent_id: str | None
    step: int = 0


@dataclass(frozen=True, slots=True)
class TreeRow:
    """What a visible row's label shows (loaded for the visible rows only)."""

    id: str
    parent_id: str | None
    step: int
    source: str
    node: str
    time: datetime | None
    actor: str

    @property
    def label(self) -> str:
        parts = [f"step {self.step}", self.source]
        if self.node:
            parts.append(self.node)
        if self.time is not None:
            parts.append(self.time.strftime("%Y-%m-%d %H:%M:%S"))
        if self.actor:
            parts.append(f"by {self.actor}")
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class Placement:
    """Every checkpoint's position: index (row order) and lane. Arrays by index."""

    ids: tuple[str, ...]
    steps: tuple[int, ...]
    lane: tuple[int, ...]
    parent: tuple[int, ...]  # index of the parent, -1 for a root (or a parent not stored)
    children: tuple[int, ...]  # number of children
    lanes: int
    index: dict[str, int] = field(repr=False)
    # per lane, the last row with anything drawn in it (a dot, or a line towards one)
    drawn_to: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)

    def span_key(self, start: int, end: int) -> str:
        """A name for rows start..end that a page can send back: their first and last ids
        (indexes would do today, as ids only grow, but ids also say which rows were meant)."""
        return f"{self.ids[start]}..{self.ids[end]}"

    def span(self, key: str) -> tuple[int, int] | None:
        first, sep, last = key.partition("..")
        if not sep or first not in self.index or last not in self.index:
            return None
        start, end = self.index[first], self.index[last]
        return (start, end) if start <= end else None


def place(links: Iterable[Link]) -> Placement:
    return _placed_after(_EMPTY, sorted(links, key=lambda r: r.id))


def extend(p: Placement, links: Iterable[Link]) -> Placement | None:
    """`p` with `links` placed after its rows, as `place` would place all of them; None if a
    new id does not sort after `p`'s last (its row would go in between: place them all)."""
    ordered = sorted(links, key=lambda r: r.id)
    if not ordered:
        return p
    if p.ids and ordered[0].id <= p.ids[-1]:
        return None
    return _placed_after(p, ordered)


def _placed_after(p: Placement, ordered: Sequence[Link]) -> Placement:
    """One sweep in id order: a checkpoint's first child keeps its parent's lane while nothing
    else was drawn in it below the parent; any other child takes the leftmost lane that is
    empty from its parent's row down (the branch's curve starts at that row), and a root a
    new lane. A row's lane depends only on the rows before it, so `extend` can place new rows
    after kept ones. `p`'s arrays are copied, never changed (it may be in use)."""
    index = dict(p.index)
    lane = list(p.lane)
    parent = list(p.parent)
    children = [*p.children, *[0] * len(ordered)]
    drawn_to = _DrawnTo(p.drawn_to)
    for i, row in enumerate(ordered, start=len(p)):
        index[row.id] = i
    for i, row in enumerate(ordered, start=len(p)):
        up = index.get(row.parent_id, -1) if row.parent_id else -1
        if up < 0:
            chosen = drawn_to.lanes
        elif children[up] == 0 and drawn_to.last(lane[up]) == up:
            chosen = lane[up]
        else:
            chosen = drawn_to.leftmost_before(up)
        drawn_to.set(chosen, i)
        lane.append(chosen)
        if up >= 0:
            children[up] += 1
        parent.append(up)
    return Placement(
        ids=(*p.ids, *(r.id for r in ordered)),
        steps=(*p.steps, *(r.step for r in ordered)),
        lane=tuple(lane),
        parent=tuple(parent),
        children=tuple(children),
        lanes=max(drawn_to.lanes, 1),
        index=index,
        drawn_to=drawn_to.values(),
    )


class _DrawnTo:
    """Per lane, the last row drawn in it, and the leftmost lane drawn only above a given row,
    found in O(log lanes): a min segment tree over the lanes. (Scanning the lanes per fork, a
    thread forked 5,000 times from older and older steps, a lane each, took 390 ms to lay out
    instead of 7.)"""

    def __init__(self, drawn_to: Sequence[int]) -> None:
        self.lanes = len(drawn_to)
        self._build(drawn_to)

    def _build(self, drawn_to: Sequence[int]) -> None:
        size = 1
        while size < max(len(drawn_to), 1):
            size *= 2
        tree = [_NEVER] * (2 * size)
        tree[size : size + len(drawn_to)] = drawn_to
        for node in range(size - 1, 0, -1):
            tree[node] = min(tree[2 * node], tree[2 * node + 1])
        self._size, self._tree = size, tree

    def last(self, lane: int) -> int:
        return self._tree[self._size + lane]

    def leftmost_before(self, row: int) -> int:
        """The leftmost lane with nothing drawn at or below `row`; a new lane if none."""
        tree = self._tree
        if tree[1] >= row:
            return self.lanes
        node = 1
        while node < self._size:
            node *= 2
            if tree[node] >= row:
                node += 1
        return node - self._size

    def set(self, lane: int, row: int) -> None:
        """Lane `lane` (or a new one, `lane == self.lanes`) is drawn down to `row`."""
        if lane == self.lanes:
            if self.lanes == self._size:
                self._build([*self.values(), row])
            self.lanes += 1
        tree = self._tree
        node = self._size + lane
        tree[node] = row
        node //= 2
        while node:
            tree[node] = min(tree[2 * node], tree[2 * node + 1])
            node //= 2

    def values(self) -> tuple[int, ...]:
        return tuple(self._tree[self._size : self._size + self.lanes])


_NEVER = 1 << 62  # an unused lane's leaf: never "drawn only above" any row


_EMPTY = Placement((), (), (), (), (), 1, {})


@dataclass(frozen=True, slots=True)
class Fold:
    """Rows start..end (indexes, inclusive) shown as one row. `kind` says why (a CSS class
    and the label's wording): "stretch" for an old uneventful stretch."""

    start: int
    end: int
    kind: str = "stretch"

    @property
    def count(self) -> int:
        return self.end - self.start + 1


def pinned_rows(
    p: Placement,
    *,
    keep: Collection[str] = (),
    recent: int = RECENT,
    max_marks: int = MAX_MARKS,
) -> set[int]:
    """Rows a stretch fold never hides: the ones in `keep` (head, selected, waiting for a
    review), the newest `recent`, and where branches start and leave (the newest
    `max_marks` of those, so a thread with thousands of forks still draws a bounded page)."""
    n = len(p)
    pinned = {p.index[i] for i in keep if i in p.index}
    pinned.update(range(max(0, n - recent), n))
    marks = [
        i for i in range(n)
        if p.children[i] > 1 or p.parent[i] < 0 or p.lane[i] != p.lane[p.parent[i]]
    ]
    pinned.update(marks[-max_marks:])
    if n:
        pinned.add(0)
    return pinned


def stretch_folds(
    p: Placement,
    pinned: Collection[int],
    opened: Iterable[tuple[int, int]] = (),
    *,
    min_size: int = MIN_FOLD,
) -> list[Fold]:
    """Fold every run of at least `min_size` consecutive rows that are neither pinned nor in
    an opened span."""
    visible = [False] * len(p)
    for i in pinned:
        visible[i] = True
    for start, end in opened:
        for i in range(max(start, 0), min(end, len(p) - 1) + 1):
            visible[i] = True
    folds: list[Fold] = []
    start = -1
    for i, shown in enumerate([*visible, True]):
        if not shown and start < 0:
            start = i
        elif shown and start >= 0:
            if i - start >= min_size:
                folds.append(Fold(start, i - 1))
            start = -1
    return folds


def unfold_span(fold: Fold, chunk: int = UNFOLD_CHUNK) -> tuple[int, int]:
    """The rows one unfold reveals: the whole fold, or its newest `chunk` rows (those next
    to the visible row below it); the rest stays folded, one click further (unless it would
    be too short to be worth a fold)."""
    if fold.count - chunk < MIN_FOLD:
        return (fold.start, fold.end)
    return (fold.end - chunk + 1, fold.end)


@dataclass(frozen=True, slots=True)
class Segment:
    """One stroke of a lane inside one row (row coordinates: y from 0 to ROW_HEIGHT)."""

    kind: str  # "through", "down", "up" or "branch" (from lane `from_lane` into `lane`)
    lane: int
    from_lane: int
    is_branch: bool

    @property
    def bundled(self) -> bool:
        return self.lane >= BUNDLE

    @property
    def path(self) -> str:
        x = lane_x(self.lane)
        if self.kind == "through":
            return f"M{x},0 L{x},{ROW_HEIGHT}"
        if self.kind == "down":
            return f"M{x},{CENTER} L{x},{ROW_HEIGHT}"
        if self.kind == "up":
            return f"M{x},0 L{x},{CENTER}"
        x1 = lane_x(self.from_lane)
        return f"M{x1},{CENTER} C{x1},{ROW_HEIGHT} {x},{CENTER} {x},{ROW_HEIGHT}"


@dataclass(frozen=True, slots=True)
class DisplayRow:
    """One drawn row: a checkpoint (`fold` None, start == end) or a fold of rows."""

    position: int  # 0-based, top to bottom
    start: int
    end: int
    fold: Fold | None
    lanes: tuple[int, ...]  # the lanes of the checkpoints it stands for (a dot in each)
    segments: tuple[Segment, ...]

    @property
    def is_fold(self) -> bool:
        return self.fold is not None

    @property
    def xs(self) -> list[int]:
        """Where its dots go: one per lane it stands for (the bundle's once)."""
        return sorted({lane_x(lane) for lane in self.lanes})

    @property
    def bundled(self) -> bool:
        """Whether its (first) dot is drawn in the bundle of lanes."""
        return bool(self.lanes) and self.lanes[0] >= BUNDLE


def display_rows(p: Placement, folds: Sequence[Fold] = ()) -> list[DisplayRow]:
    """The rows to draw, top to bottom, with each row's lane segments. `folds` must not
    overlap."""
    n = len(p)
    pos = [0] * n
    fold_at: dict[int, Fold] = {}
    bounds: list[tuple[int, int, Fold | None]] = []
    by_start = {f.start: f for f in folds}
    i = 0
    while i < n:
        f = by_start.get(i)
        end = f.end if f is not None else i
        bounds.append((i, end, f))
        for j in range(i, end + 1):
            pos[j] = len(bounds) - 1
        if f is not None:
            fold_at[len(bounds) - 1] = f
        i = end + 1
    segments: list[set[Segment]] = [set() for _ in bounds]
    for child in range(n):
        parent = p.parent[child]
        if parent < 0:
            continue
        dp, dc = pos[parent], pos[child]
        if dp == dc:
            continue  # inside one fold
        lp, lc = p.lane[parent], p.lane[child]
        branch = lp != lc
        segments[dp].add(Segment("branch" if branch else "down", lc, lp, branch))
        for d in range(dp + 1, dc):
            segments[d].add(Segment("through", lc, lc, branch))
        segments[dc].add(Segment("up", lc, lc, branch))
    out = []
    for d, (start, end, f) in enumerate(bounds):
        lanes = tuple(sorted({p.lane[j] for j in range(start, end + 1)}))
        # straight strokes first, so a branch's curve is drawn over them
        segs = tuple(sorted(segments[d], key=lambda s: (s.kind == "branch", s.lane, s.kind)))
        out.append(DisplayRow(d, start, end, f, lanes, segs))
    return out


def lanes_width(lanes: int) -> int:
    return MARGIN * 2 + max(min(lanes, DRAWN_LANES) - 1, 0) * LANE_WIDTH
