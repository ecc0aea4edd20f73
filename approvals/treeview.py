"""The thread page's tree: which rows to draw for one viewer, and what a live update or an
unfold sends them (the views render; `approvals.tree` lays out).

What a page shows depends on its viewer's state (the selected checkpoint, the folds they
opened), so the page sends that state back with every request (`TreeState`, from the hidden
`#tree-state` form): the server stays stateless and any number of viewers can differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from approvals import placements, selectors
from approvals.tree import (
    DRAWN_LANES,
    MIN_FOLD,
    UNFOLD_CHUNK,
    DisplayRow,
    Fold,
    Placement,
    TreeRow,
    display_rows,
    lanes_width,
    pinned_rows,
    stretch_folds,
    unfold_span,
)
from orchestration.runtime.models import Thread

# more new rows than this in one live update: redraw the tree (and fold it again) instead
MAX_APPEND = 20
MAX_OPENED = 50


@dataclass(frozen=True, slots=True)
class TreeState:
    """What the viewer's page holds: selected checkpoint, opened spans ("first..last" ids),
    and for live updates the last row it drew, the head it marked and its lane count."""

    selected: str = ""
    opened: tuple[str, ...] = ()
    last: str = ""
    head: str = ""
    lanes: int = 0
    # The selection is the page's default (the head when it was drawn), not the viewer's
    # pick: when the run stops moving, live updates move it to the head (`thread_live`).
    follow: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str] | object) -> TreeState:
        get = query.get  # type: ignore[attr-defined]
        getlist = getattr(query, "getlist", lambda k: [get(k)] if get(k) else [])
        try:
            lanes = int(get("lanes") or 0)
        except ValueError:
            lanes = 0
        opened = tuple(dict.fromkeys(o for o in getlist("open") if o))[:MAX_OPENED]
        return cls(
            selected=get("checkpoint") or "",
            opened=opened,
            last=get("last") or "",
            head=get("head") or "",
            lanes=lanes,
            follow=get("follow") == "1",
        )


@dataclass(frozen=True, slots=True)
class ShownRow:
    """One drawn row with what its template needs."""

    row: DisplayRow
    id: str  # the checkpoint's id, or the fold's first id (the row's element id)
    detail: TreeRow | None
    is_head: bool = False
    is_pending: bool = False
    is_selected: bool = False
    fold_key: str = ""
    first_step: int = 0
    last_step: int = 0
    reveals: int = 0  # how many rows unfolding it shows

    @property
    def is_fold(self) -> bool:
        return self.row.is_fold

    @property
    def count(self) -> int:
        return self.row.end - self.row.start + 1


@dataclass(frozen=True, slots=True)
class TreeView:
    thread: Thread
    placement: Placement
    rows: list[ShownRow]
    state: TreeState  # as drawn: `opened` cleaned, `last`/`head`/`lanes` of this drawing
    width: int
    # checkpoints in folded rows on the whole page, not only in `rows` (a live update or an
    # unfold sends a few rows, and the count above the tree said "0 folded" after them)
    folded: int

    @property
    def total(self) -> int:
        return len(self.placement)

    @property
    def lanes(self) -> int:
        return self.placement.lanes

    @property
    def bundled_lanes(self) -> int:
        """How many lanes share the last drawn column (see `tree.DRAWN_LANES`); 0 if none."""
        lanes = self.placement.lanes
        return lanes - DRAWN_LANES + 1 if lanes > DRAWN_LANES else 0


@dataclass(frozen=True, slots=True)
class Tree:
    """A thread's tree for one viewer state: the full placement, its folds and drawn rows."""

    placement: Placement
    folds: list[Fold]
    display: list[DisplayRow]
    head: str
    pending: set[str]
    opened: tuple[str, ...]


def compute(thread: Thread, state: TreeState) -> Tree:
    placement = placements.placement_of(thread)
    head = thread.head_checkpoint_id or (placement.ids[-1] if len(placement) else "")
    return _laid_out(placement, head, selectors.open_review_checkpoints(thread), state)


def _laid_out(placement: Placement, head: str, pending: set[str], state: TreeState) -> Tree:
    """The folds and drawn rows of `placement` for this viewer's state (no query)."""
    keep = {head, state.selected, *pending} - {""}
    pinned = pinned_rows(placement, keep=keep)
    # a span is what one unfold revealed: longer ones (a hand-made URL) are cut to that size
    spans = [(key, _clip(placement.span(key))) for key in state.opened]
    opened = tuple(key for key, span in spans if span is not None)
    folds = stretch_folds(placement, pinned, [span for _, span in spans if span is not None])
    return Tree(placement, folds, display_rows(placement, folds), head, pending, opened)


def _clip(span: tuple[int, int] | None) -> tuple[int, int] | None:
    if span is None:
        return None
    return (max(span[0], span[1] - UNFOLD_CHUNK - MIN_FOLD + 1), span[1])


def shown(thread: Thread, tree: Tree, rows: Sequence[DisplayRow], selected: str) -> list[ShownRow]:
    """Attach labels (one query for the visible checkpoints) and marks to drawn rows."""
    p = tree.placement
    details = selectors.tree_details(thread, [p.ids[r.start] for r in rows if not r.is_fold])
    out = []
    for r in rows:
        cid = p.ids[r.start]
        if r.fold is not None:
            reveal = unfold_span(r.fold)
            out.append(ShownRow(r, cid, None, fold_key=p.span_key(r.start, r.end),
                                first_step=p.steps[r.start], last_step=p.steps[r.end],
                                reveals=reveal[1] - reveal[0] + 1))
        else:
            out.append(ShownRow(r, cid, details.get(cid), is_head=cid == tree.head,
                                is_pending=cid in tree.pending, is_selected=cid == selected))
    return out


def build(thread: Thread, state: TreeState) -> TreeView:
    tree = compute(thread, state)
    selected = state.selected or tree.head
    return view_of(thread, tree, tree.display, state, selected)


def view_of(thread: Thread, tree: Tree, rows: Sequence[DisplayRow], state: TreeState,
            selected: str, *, folded: int | None = None) -> TreeView:
    """`rows` of `tree` drawn for this viewer; `folded`: the page's folded checkpoints once
    these rows are drawn (by default, those of `tree`'s whole drawing)."""
    p = tree.placement
    drawn = TreeState(
        selected=selected,
        opened=tree.opened,
        last=p.ids[-1] if len(p) else "",
        head=tree.head,
        lanes=p.lanes,
        follow=state.follow,
    )
    if folded is None:
        folded = _folded(tree.display)
    return TreeView(thread, p, shown(thread, tree, rows, selected), drawn, lanes_width(p.lanes),
                    folded)


def unfold(thread: Thread, state: TreeState, key: str) -> TreeView | None:
    """The rows that replace the folded row `key` ("first..last" ids, as the page drew it):
    its newest UNFOLD_CHUNK rows, and what stays folded above them. None if `key` names no
    rows of this thread. Drawn from the span the page shows, not from today's folds: the
    page's folds may be older than the tree (live updates move the newest rows along)."""
    tree = compute(thread, state)
    p = tree.placement
    span = p.span(key)
    if span is None:
        return None
    start, end = span
    reveal_start, _ = unfold_span(Fold(start, end))
    # rows outside the span folded too: the drawing of the span's rows depends only on the
    # edges that touch or cross them, and the rest of the tree stays a few rows
    folds = [Fold(a, b) for a, b in ((0, start - 1), (start, reveal_start - 1),
                                     (end + 1, len(p) - 1)) if a <= b]
    rows = [r for r in display_rows(p, folds) if start <= r.start and r.end <= end]
    opened = (*tree.opened, p.span_key(reveal_start, end))
    drawn = Tree(p, tree.folds, tree.display, tree.head, tree.pending, opened)
    after_state = TreeState(state.selected, opened, state.last, state.head, state.lanes,
                            state.follow)
    # the count above the tree: the page's folds once this one is opened
    after = _folded(_laid_out(p, tree.head, tree.pending, after_state).display)
    return view_of(thread, drawn, rows, after_state, state.selected or tree.head, folded=after)


def _folded(rows: Sequence[DisplayRow]) -> int:
    return sum(r.end - r.start + 1 for r in rows if r.is_fold)


@dataclass(frozen=True, slots=True)
class Append:
    """A live update that only adds rows at the bottom: the row that was last (redrawn: it
    now has a child, and may have lost the head mark) and the new rows."""

    view: TreeView  # rows: the previous last row, then the new ones


def live_append(thread: Thread, state: TreeState) -> Append | TreeView:
    """What a live update sends: an Append when the new checkpoints continue the last drawn
    row's lane (a superstep), else the whole tree drawn again for this viewer."""
    tree = compute(thread, state)
    full = view_of(thread, tree, tree.display, state, state.selected or tree.head)
    p = tree.placement
    last = p.index.get(state.last)
    if last is None or p.lanes != state.lanes or state.head not in (state.last, tree.head):
        return full
    new = range(last + 1, len(p))
    if len(new) > MAX_APPEND:
        return full
    for i in new:
        if p.parent[i] != i - 1 or p.lane[i] != p.lane[i - 1]:
            return full
    # the drawn rows past the previous last: the same rows as in the full layout, which
    # pins the newest RECENT rows, so none of them is folded
    rows = [r for r in tree.display if r.end >= last]
    if len(rows) != len(new) + 1 or any(r.is_fold for r in rows):
        return full
    return Append(view_of(thread, tree, rows, state, state.selected or tree.head))
