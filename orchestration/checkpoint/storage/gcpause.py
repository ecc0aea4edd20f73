"""`gc_paused`: no cyclic garbage collection while a read builds a listing.

A history listing allocates thousands of containers (rows, lists, dicts, configs, snapshots)
and frees almost none of them until the caller drops the result. CPython starts a young
collection every 700 container allocations, and each one traverses every object still young,
so a 300-checkpoint listing spent about a seventh of its instructions in the collector
finding nothing to free (the objects a read builds hold no reference cycles). Mercurial
pauses the collector around its big parses for the same reason (`util.nogc`).

The pause only defers work: the objects are counted as usual, and the first allocation after
the listing starts one young collection of them all. The collector's switch is global, so:
if it is already off (an application that turns it off, or another thread's listing), this
does nothing, and leaves it as it found it; two listings in different threads may overlap,
in which case the first to end turns it back on for both (the second then just pauses less).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
