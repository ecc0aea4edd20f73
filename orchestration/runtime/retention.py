"""Retention: forget the checkpoints of threads that finished long ago; keep their history.

A pruned thread keeps its `Thread` row, runs, events, reviews and decisions (the audit
trail, append-only and PROTECTed anyway); what goes is what the Django saver stores for it:
checkpoints, field versions and pending writes (`DjangoCheckpointSaver.delete_thread`). A
`thread_pruned` event records what was freed. `export_thread` writes everything first, as
JSON, when the thread should be kept outside the database.

Never pruned: a thread that is not done, failed or cancelled; one with a run that is queued,
running, stalled or waiting; one with an open review (pending or claimed).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Sum
from django.db.models.functions import Coalesce, Length
from django.utils import timezone

from orchestration.checkpoint import CheckpointConfig
from orchestration.checkpoint.storage.inline import unpack_inline
from orchestration.runtime.events import publish
from orchestration.runtime.models import Checkpoint, Event, FieldVersion, PendingWrite, Run, Thread

__all__ = [
    "PruneReport", "export_thread", "prunable_threads", "prune_after_days",
    "prune_every_seconds", "prune_threads",
]

FINISHED = (Thread.Status.DONE, Thread.Status.FAILED, Thread.Status.CANCELLED)


def prune_after_days() -> float | None:
    """STEPWISE_PRUNE_AFTER_DAYS: None (the default) keeps everything forever."""
    value = getattr(settings, "STEPWISE_PRUNE_AFTER_DAYS", None)
    return None if value in (None, "") else float(value)


def prune_every_seconds() -> float:
    return float(getattr(settings, "STEPWISE_PRUNE_EVERY_SECONDS", 3600.0))


@dataclass
class PruneReport:
    threads: list[str] = field(default_factory=list)
    checkpoints: int = 0
    field_versions: int = 0
    pending_writes: int = 0
    bytes: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would prune" if self.dry_run else "pruned"
        return (f"{verb} {len(self.threads)} thread(s): {self.checkpoints} checkpoints, "
                f"{self.field_versions} field versions, {self.pending_writes} pending writes, "
                f"{self.bytes:,} bytes of state")


def prunable_threads(older_than: dt.timedelta) -> QuerySet[Thread]:
    cutoff = timezone.now() - older_than
    busy = Run.objects.filter(
        thread=OuterRef("pk"), status__in=[*Run.ACTIVE, Run.Status.WAITING]
    )
    qs = Thread.objects.filter(status__in=FINISHED, updated_at__lt=cutoff).filter(
        Exists(Checkpoint.objects.filter(thread=OuterRef("pk")))
    ).exclude(Exists(busy))
    if apps.is_installed("approvals"):
        review = apps.get_model("approvals", "ReviewRequest")
        qs = qs.exclude(Exists(review.objects.filter(
            thread=OuterRef("pk"), status__in=review.OPEN
        )))
    return qs.order_by("updated_at", "pk")


def prune_threads(*, older_than: dt.timedelta, dry_run: bool = False,
                  limit: int | None = None) -> PruneReport:
    report = PruneReport(dry_run=dry_run)
    candidates = list(prunable_threads(older_than).values_list("pk", flat=True)[:limit])
    for pk in candidates:
        freed = _prune_one(pk, older_than=older_than, dry_run=dry_run)
        if freed is None:
            continue
        report.threads.append(freed["thread_id"])
        report.checkpoints += freed["checkpoints"]
        report.field_versions += freed["field_versions"]
        report.pending_writes += freed["pending_writes"]
        report.bytes += freed["bytes"]
    return report


def _prune_one(pk: int, *, older_than: dt.timedelta, dry_run: bool) -> dict[str, Any] | None:
    from orchestration.runtime.savers import DjangoCheckpointSaver

    with transaction.atomic():
        # Re-checked under a row lock: a run started or a review opened since the listing
        # keeps the thread (starting a run takes the same lock through the one-active-run
        # constraint's row, and SQLite serializes writers).
        thread = Thread.objects.select_for_update().filter(pk=pk).first()
        if thread is None or not prunable_threads(older_than).filter(pk=pk).exists():
            return None
        freed = _measure(thread)
        if dry_run:
            return freed
        DjangoCheckpointSaver().delete_thread(thread.thread_id)
        publish("thread_pruned", thread=thread,
                reason=f"retention: finished more than {older_than} ago",
                data={k: v for k, v in freed.items() if k != "thread_id"})
    return freed


def _measure(thread: Thread) -> dict[str, Any]:
    def size(qs: QuerySet[Any], *columns: str) -> int:
        total = 0
        for column in columns:
            total += qs.aggregate(n=Coalesce(Sum(Length(column)), 0))["n"] or 0
        return int(total)

    checkpoints = Checkpoint.objects.filter(thread=thread)
    versions = FieldVersion.objects.filter(thread=thread)
    pending = PendingWrite.objects.filter(checkpoint__thread=thread)
    return {
        "thread_id": thread.thread_id,
        "checkpoints": checkpoints.count(),
        "field_versions": versions.count() + _kept_in_rows(checkpoints),
        "pending_writes": pending.count(),
        "bytes": size(checkpoints, "internal", "writes", "vals") + size(versions, "data")
        + size(pending, "data"),
    }


def _kept_in_rows(checkpoints: QuerySet[Checkpoint]) -> int:
    """How many field versions the checkpoints keep in their own rows (`Checkpoint.vals`):
    freed with them, as their `FieldVersion` rows are."""
    kept = checkpoints.exclude(vals=None).values_list("checkpoint_id", "vals")
    return sum(len(unpack_inline(cid, bytes(vals))) for cid, vals in kept.iterator())


# -- export ---------------------------------------------------------------------------------


def export_thread(thread: Thread) -> dict[str, Any]:
    """Everything Stepwise knows of `thread`, as JSON-ready data: the thread, its runs, its
    history (events), reviews and decisions, and every checkpoint with its full state."""
    from orchestration.runtime.savers import DjangoCheckpointSaver

    saver = DjangoCheckpointSaver()
    checkpoints = []
    for item in saver.list(CheckpointConfig(thread.thread_id)):
        checkpoints.append({
            "checkpoint_id": item.checkpoint.id,
            "parent_id": item.parent_config.checkpoint_id if item.parent_config else None,
            "created_at": item.checkpoint.ts,
            "source": item.metadata.source,
            "step": item.metadata.step,
            "next": list(item.checkpoint.next),
            "values": dict(item.checkpoint.values),
            "writes": dict(item.metadata.writes),
            "extra": dict(item.metadata.extra),
            "pending_writes": [
                {"task_id": w.task_id, "channel": w.channel, "value": w.value}
                for w in item.pending_writes
            ],
        })
    data: dict[str, Any] = {
        "format": "stepwise-thread-export/1",
        "exported_at": timezone.now(),
        "thread": {
            "thread_id": thread.thread_id, "graph_name": thread.graph_name,
            "title": thread.title, "status": thread.status,
            "started_by": _username(thread.started_by), "created_at": thread.created_at,
            "updated_at": thread.updated_at, "head_checkpoint_id": thread.head_checkpoint_id,
        },
        "runs": [
            {"id": r.pk, "kind": r.kind, "status": r.status, "previous_id": r.previous_id,
             "requested_by": _username(r.requested_by), "reason": r.reason,
             "attempts": r.attempts, "worker": r.worker, "error": r.error,
             "created_at": r.created_at, "started_at": r.started_at,
             "finished_at": r.finished_at, "from_checkpoint_id": r.from_checkpoint_id}
            for r in Run.objects.filter(thread=thread).select_related("requested_by")
            .order_by("pk")
        ],
        "events": [
            {"id": e.pk, "kind": e.kind, "run_id": e.run_id, "actor": _username(e.actor),
             "reason": e.reason, "data": e.data, "created_at": e.created_at}
            for e in Event.objects.filter(thread=thread).select_related("actor").order_by("pk")
        ],
        "checkpoints": checkpoints,
    }
    if apps.is_installed("approvals"):
        review_model = apps.get_model("approvals", "ReviewRequest")
        reviews = []
        for review in review_model.objects.filter(thread=thread).order_by("pk"):
            decision = getattr(review, "decision", None) if review.status == "decided" else None
            reviews.append({
                "id": review.pk, "run_id": review.run_id, "interrupt_id": review.interrupt_id,
                "node": review.node, "title": review.title, "status": review.status,
                "payload": review.payload, "assignee": review.assignee,
                "created_at": review.created_at, "closed_at": review.closed_at,
                "decision": None if decision is None else {
                    "action": decision.action, "decided_by": _username(decision.decided_by),
                    "decided_at": decision.decided_at, "comment": decision.comment,
                    "values": decision.values, "text": decision.text,
                    "resumed_run_id": decision.resumed_run_id,
                },
            })
        data["reviews"] = reviews
    return data


def dumps(data: Any) -> str:
    return json.dumps(data, default=_json_default, indent=2, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    """State values are whatever the graph's types hold: make each JSON, never guess back."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    return repr(value)


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None
