"""The review page's "What changed before this review": the checkpoint a review was asked at
against its parent, rendered once per process and kept.

Checkpoints never change once written (a fork or an edit writes new ones), so this section is
the same on every view of every review asked at that checkpoint, whoever looks: the review
page shows it on each GET and again on the page a decision redirects to. Reading the two
checkpoints through the saver, diffing them and rendering the values was about a fifth of
that page's instructions; a kept section costs one indexed lookup instead.

The lookup is there because one thing does remove checkpoints: retention
(`DjangoCheckpointSaver.delete_thread`) forgets all of a thread's at once, and the thread can
run again afterwards. A section is used only while the checkpoint it was asked at still
exists, so a pruned thread's page shows what an uncached read shows (nothing changed), in
every process. A damaged checkpoint (`UnreadableCheckpoint`) and a missing one are never kept:
the page says so on every view, as before.

Nothing here depends on the user or the request but the script prefix, which is part of the
key (the section's links are URLs).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

from django.db import connection
from django.template import engines
from django.urls import get_script_prefix, reverse
from markupsafe import Markup

from approvals import selectors
from approvals.diff import diff_states
from orchestration.runtime.models import Checkpoint, Thread

# Kept sections: a few hundred reviews' worth, each under MAX_ENTRY_CHARS (a value is shown
# within diff.VALUE_BUDGET, so only a state of many changed fields comes near it).
MAX_ENTRIES = 512
MAX_CHARS = 8 << 20
MAX_ENTRY_CHARS = 256 << 10


_Key = tuple[int, str, str, str]


class _Kept:
    """A small LRU of rendered sections, bounded by entries and characters; thread-safe (the
    served app renders pages on several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[_Key, Markup] = OrderedDict()
        self._chars = 0

    def get(self, key: _Key) -> Markup | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: _Key, section: Markup) -> None:
        if len(section) > MAX_ENTRY_CHARS:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._chars -= len(old) if old is not None else 0
            self._items[key] = section
            self._chars += len(section)
            while len(self._items) > MAX_ENTRIES or self._chars > MAX_CHARS:
                _, dropped = self._items.popitem(last=False)
                self._chars -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._chars = 0


_kept = _Kept()


def forget_all() -> None:
    """Drop every kept section (tests; a process that wants to measure the first view)."""
    _kept.clear()


def changes_before(thread: Thread, checkpoint_id: str, exists: bool | None = None) -> Markup:
    """The section for a review asked at `checkpoint_id` of `thread`. Raises
    UnreadableCheckpoint (never kept) when either checkpoint cannot be decoded. `exists`:
    whether the checkpoint existed, when the caller read it already (the review page, with
    the review: approvals.access.access_review_page); None looks it up here."""
    if not checkpoint_id:
        return _render(thread, [], "", "")
    key = (thread.pk, thread.thread_id, checkpoint_id, get_script_prefix())
    kept = _kept.get(key)
    if kept is not None and (_exists(thread, checkpoint_id) if exists is None else exists):
        return kept
    changes, asked_id, parent_id = _read_changes(thread, checkpoint_id)
    section = _render(thread, changes, asked_id, parent_id)
    if asked_id:  # found and read: the same from now on
        _kept.put(key, section)
    return section


def _read_changes(thread: Thread, checkpoint_id: str) -> tuple[list[Any], str, str]:
    """What changed in the checkpoint, against its parent; with the two checkpoints' ids
    ("" for the asked one when it does not exist). Both are read together: the values they
    share are fetched and decoded once."""
    asked, parent = selectors.get_checkpoint_pair(thread, checkpoint_id)
    if asked is None:
        return [], "", ""
    parent_id = asked.parent_config.checkpoint_id if asked.parent_config else None
    old = selectors.checkpoint_values(parent)
    changes = [c for c in diff_states(old, asked.checkpoint.values) if c.is_change]
    return changes, asked.checkpoint.id, parent_id or ""


def _render(thread: Thread, changes: list[Any], asked_id: str, parent_id: str) -> Markup:
    urls = {
        key: reverse("checkpoint-state", args=[thread.thread_id, cid]) if cid else ""
        for key, cid in (("new_url", asked_id), ("old_url", parent_id))
    }
    template = engines["jinja2"].env.get_template("approvals/_diff.html")  # type: ignore[attr-defined]
    return Markup(template.render(changes=changes, **urls))  # noqa: S704  autoescaped


def _exists(thread: Thread, checkpoint_id: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(_exists_sql(), [thread.pk, checkpoint_id])
        return cursor.fetchone() is not None


@functools.cache
def _exists_sql() -> str:
    q = connection.ops.quote_name
    return (f"SELECT 1 FROM {q(Checkpoint._meta.db_table)} "  # noqa: S608  model names only
            "WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = %s")

