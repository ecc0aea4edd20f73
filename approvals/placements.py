"""Each thread's tree placement, kept in this process between requests and grown by the rows
stored since, instead of laid out again from every checkpoint.

A live update of a 10,000-checkpoint thread spent ~18 ms per viewer and superstep reading the
10,000 (id, parent, step) rows and placing them, for one new row. Now a request first reads
the thread's mark (`selectors.checkpoints_mark`: how many checkpoints, the newest row's pk and
id; ~2 ms from the thread's index entries), and:

- the mark is the one kept: the kept placement is the tree;
- rows were only added since: those rows are read and placed after the kept ones (`extend`),
  if their ids sort after the kept ones (a superstep's or a fork's new checkpoints do);
- anything else (rows deleted, a clock that went back): the tree is laid out again.

What the mark cannot see is a checkpoint id stored again with another parent (its row is
updated in place). So a kept placement is laid out again from scratch at least every
`MAX_AGE` seconds, which bounds how long such a change can go undrawn.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from approvals import selectors
from approvals.tree import Placement, extend, place
from orchestration.runtime.models import Thread

# seconds a placement grows from its last full layout; threads kept per process
MAX_AGE = 30.0
MAX_THREADS = 16  # a 10,000-checkpoint thread's layout is ~1.5 MB


@dataclass(frozen=True, slots=True)
class _Kept:
    mark: tuple[int, int, str]  # `selectors.checkpoints_mark` when it was kept
    placement: Placement
    laid_out_at: float  # time.monotonic() of the full layout it grew from


_lock = threading.Lock()
_kept: OrderedDict[int, _Kept] = OrderedDict()


def placement_of(thread: Thread) -> Placement:
    """The thread's placement, as `place(selectors.tree_links(thread))` gives it."""
    mark = selectors.checkpoints_mark(thread)
    now = time.monotonic()
    with _lock:
        kept = _kept.get(thread.pk)
    if kept is not None and now - kept.laid_out_at < MAX_AGE:
        if mark == kept.mark:
            return kept.placement
        grown = _grown(thread, kept, mark)
        if grown is not None:
            _keep(thread.pk, _Kept(mark, grown, kept.laid_out_at))
            return grown
    placement = place(selectors.tree_links(thread))
    _keep(thread.pk, _Kept(mark, placement, now))
    return placement


def _grown(thread: Thread, kept: _Kept, mark: tuple[int, int, str]) -> Placement | None:
    """The kept placement with the rows added since, or None unless rows were only added:
    the kept newest row is still there, under its id, and the rows after it are all new."""
    count, last_pk, _ = mark
    kept_count, kept_pk, kept_id = kept.mark
    if count <= kept_count or last_pk <= kept_pk:
        return None
    rows = selectors.links_from(thread, kept_pk)
    if not rows or rows[0][0] != kept_pk or rows[0][2].id != kept_id:
        return None
    if len(rows) - 1 != count - kept_count:
        return None
    return extend(kept.placement, [link for _, ns, link in rows[1:] if not ns])


def forget() -> None:
    """Drop every kept placement (tests, or a process that wants its memory back)."""
    with _lock:
        _kept.clear()


def _keep(pk: int, kept: _Kept) -> None:
    with _lock:
        _kept[pk] = kept
        _kept.move_to_end(pk)
        while len(_kept) > MAX_THREADS:
            _kept.popitem(last=False)
