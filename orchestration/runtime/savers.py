"""`DjangoCheckpointSaver`: the checkpoint tree in the Django models (SQLite or PostgreSQL).

Same storage core as the SQLite saver: a `Checkpoint` row per checkpoint and a `FieldVersion`
row per changed field (appends stored as the appended items only). Every write runs in one
`transaction.atomic` block and calls `fence()` first, so a worker that lost its lease can be
stopped before it commits anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import reduce
from operator import or_
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTransform

from orchestration.checkpoint import storage
from orchestration.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointConfig,
    CheckpointMetadata,
    CheckpointTuple,
    validate_filter,
)
from orchestration.checkpoint.filters import (
    ExtraCondition,
    matches_leftover,
    split_filter,
    sqlite_condition,
)
from orchestration.checkpoint.storage import APPEND, Blob, CheckpointRecord, Pair, WriteRecord
from orchestration.errors import CheckpointNotFound
from orchestration.runtime import models

_T = TypeVar("_T")

__all__ = ["DjangoCheckpointSaver"]

_FIELDS = (
    "checkpoint_id", "parent__checkpoint_id", "step", "source", "next", "versions", "internal",
    "writes", "extra",
)


class DjangoCheckpointSaver(BaseCheckpointSaver):
    def __init__(self, *, fence: Callable[[], None] | None = None, using: str = "default") -> None:
        self.fence = fence
        self.using = using
        self._cache = storage.ValueCache()

    # --- the port -------------------------------------------------------------------------

    def get_tuple(self, config: CheckpointConfig) -> CheckpointTuple | None:
        rows = self._checkpoints(config.thread_id)
        if config.checkpoint_id is not None:
            rows = rows.filter(checkpoint_id=config.checkpoint_id)
        row = rows.order_by("-checkpoint_id").values_list(*_FIELDS).first()
        if row is None:
            return None
        return self._decode(config.thread_id, [_record(config.thread_id, row)])[0]

    def list(
        self,
        config: CheckpointConfig,
        limit: int | None = None,
        *,
        before: CheckpointConfig | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[CheckpointTuple]:
        wanted = validate_filter(filter)
        if limit is not None and limit <= 0:
            return []
        rows = self._checkpoints(config.thread_id)
        if before is not None and before.checkpoint_id is not None:
            rows = rows.filter(checkpoint_id__lt=before.checkpoint_id)
        split = split_filter(wanted)
        rows = rows.filter(**split.columns)
        for condition in split.extra:
            rows = self._filter_extra(rows, condition)
        rows = rows.order_by("-checkpoint_id")
        if limit is not None and not split.leftover:
            rows = rows[:limit]
        records = [_record(config.thread_id, row) for row in rows.values_list(*_FIELDS)]
        if split.leftover:
            records = matches_leftover(records, split.leftover, limit)
        records.reverse()
        return self._decode(config.thread_id, records)

    def put(
        self, config: CheckpointConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> CheckpointConfig:
        encoded = storage.encode_checkpoint(
            config.thread_id, config.checkpoint_id, checkpoint, metadata, self._cache
        )
        record = encoded.record
        with transaction.atomic(using=self.using):
            if self.fence is not None:
                self.fence()
            thread_pk, parent_pk = self._thread_and_parent(config)
            models.FieldVersion.objects.using(self.using).bulk_create(
                [_field_version(thread_pk, b) for b in encoded.blobs], ignore_conflicts=True
            )
            row = models.Checkpoint(
                thread_id=thread_pk,
                checkpoint_id=record.checkpoint_id,
                parent_id=parent_pk,
                step=record.step,
                source=record.source,
                next=list(record.next),
                versions=record.versions,
                internal=record.internal,
                writes=record.meta,
                extra=record.extra_json,
                written_by=sorted(metadata.writes),
                created_at=_aware(checkpoint.ts),
                created_by_id=self._user_id(metadata.extra.get("user_id")),
                reason=str(metadata.extra.get("reason") or ""),
            )
            models.Checkpoint.objects.using(self.using).bulk_create(
                [row],
                update_conflicts=True,
                unique_fields=["thread", "checkpoint_id"],
                update_fields=[
                    "parent", "step", "source", "next", "versions", "internal", "writes",
                    "extra", "written_by", "created_at", "created_by", "reason",
                ],
            )
            models.Thread.objects.using(self.using).filter(pk=thread_pk).update(
                head_checkpoint_id=record.checkpoint_id
            )
        storage.remember_put(self._cache, encoded)
        return CheckpointConfig(config.thread_id, checkpoint.id)

    def put_writes(
        self, config: CheckpointConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> None:
        if config.checkpoint_id is None:
            raise ValueError("put_writes needs a config naming the checkpoint the writes belong to")
        records = storage.encode_writes(writes, task_id)
        with transaction.atomic(using=self.using):
            if self.fence is not None:
                self.fence()
            checkpoint_pk = (
                self._checkpoints(config.thread_id)
                .filter(checkpoint_id=config.checkpoint_id)
                .values_list("pk", flat=True)
                .first()
            )
            if checkpoint_pk is None:
                raise CheckpointNotFound(
                    f"no checkpoint {config.checkpoint_id!r} in thread {config.thread_id!r} "
                    "to attach pending writes to"
                )
            pending = models.PendingWrite.objects.using(self.using)
            pending.filter(checkpoint_id=checkpoint_pk, task_id=task_id).delete()
            pending.bulk_create(
                [
                    models.PendingWrite(
                        checkpoint_id=checkpoint_pk, task_id=w.task_id, idx=w.idx,
                        channel=w.channel, data=w.data,
                    )
                    for w in records
                ]
            )

    def delete_thread(self, thread_id: str) -> None:
        """Forget the thread's checkpoints, field values and pending writes. The `Thread` row
        itself (title, runs, events: the audit trail) stays, with no head checkpoint."""
        with transaction.atomic(using=self.using):
            db = self.using
            models.PendingWrite.objects.using(db).filter(
                checkpoint__thread__thread_id=thread_id
            ).delete()
            checkpoints = self._checkpoints(thread_id)
            checkpoints.update(parent=None)  # no cascade walk down the tree
            checkpoints.delete()
            models.FieldVersion.objects.using(db).filter(thread__thread_id=thread_id).delete()
            models.Thread.objects.using(db).filter(thread_id=thread_id).update(
                head_checkpoint_id=""
            )
        self._cache.forget_thread(thread_id)

    async def _offload(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        # Django's ORM is synchronous: the async twins run it in asgiref's thread-sensitive
        # executor, where Django expects its connections to live.
        return await sync_to_async(fn)(*args, **kwargs)

    # --- helpers --------------------------------------------------------------------------

    def _checkpoints(self, thread_id: str) -> Any:
        return models.Checkpoint.objects.using(self.using).filter(thread__thread_id=thread_id)

    def _filter_extra(self, rows: Any, condition: ExtraCondition) -> Any:
        """`condition` on the JSON-safe `extra` column, as `filters` defines it. On SQLite,
        Django's key lookup reads JSON `true` and the string "true" alike, so the SQL is
        the SQLite saver's; on PostgreSQL, jsonb equality is already typed."""
        if connections[self.using].vendor == "sqlite":
            column = f'"{models.Checkpoint._meta.db_table}"."extra"'
            sql, params = sqlite_condition(column, condition, mark="%s")
            # Constant SQL text; the JSON path and the value are parameters.
            return rows.filter(RawSQL(sql, params, BooleanField()))  # noqa: S611
        # KeyTransform, not `extra__<key>`: a key named like a lookup ("contains") stays a key.
        alias = f"_extra_{condition.key}"
        return rows.alias(**{alias: KeyTransform(condition.key, "extra")}).filter(
            **{alias: condition.value}
        )

    def _thread_and_parent(self, config: CheckpointConfig) -> tuple[int, int | None]:
        if config.checkpoint_id is not None:
            found = (
                self._checkpoints(config.thread_id)
                .filter(checkpoint_id=config.checkpoint_id)
                .values_list("thread_id", "pk")
                .first()
            )
            if found is not None:
                return found[0], found[1]
        thread, _ = models.Thread.objects.using(self.using).get_or_create(
            thread_id=config.thread_id
        )
        return thread.pk, None

    def _user_id(self, user_id: Any) -> int | None:
        if type(user_id) is not int:
            return None
        user_model = get_user_model()
        exists = user_model._default_manager.using(self.using).filter(pk=user_id).exists()
        return user_id if exists else None

    def _fetch(self, thread_id: str, pairs: list[Pair]) -> dict[Pair, Blob]:
        """The wanted blobs, then (for append chains) older versions of the same fields,
        a level at a time; usually two queries."""
        rows = models.FieldVersion.objects.using(self.using).filter(thread__thread_id=thread_id)
        by_field: dict[str, list[str]] = {}
        for name, version in pairs:
            by_field.setdefault(name, []).append(version)
        query = reduce(or_, (Q(field=f, version__in=vs) for f, vs in by_field.items()))
        found = _blobs(rows.filter(query))
        while True:
            bases = [
                (b.field, b.base) for b in found.values()
                if b.kind == APPEND and b.base and (b.field, b.base) not in found
                and self._cache.value(thread_id, b.field, b.base) is None
            ]
            if not bases:
                return found
            newest = max(base for _, base in bases)
            # Excluding by (field, version) pair, not by version alone: two fields changed by
            # one checkpoint share a version.
            older = _blobs(rows.filter(field__in={f for f, _ in bases}, version__lte=newest))
            more = {pair: blob for pair, blob in older.items() if pair not in found}
            if not more:
                return found
            found.update(more)

    def _decode(self, thread_id: str, records: list[CheckpointRecord]) -> list[CheckpointTuple]:
        if not records:
            return []
        writes: dict[str, list[WriteRecord]] = {}
        pending = (
            models.PendingWrite.objects.using(self.using)
            .filter(
                checkpoint__thread__thread_id=thread_id,
                checkpoint__checkpoint_id__in=[r.checkpoint_id for r in records],
            )
            .order_by("id")
            .values_list("checkpoint__checkpoint_id", "task_id", "idx", "channel", "data")
        )
        for cid, task_id, idx, channel, data in pending:
            writes.setdefault(cid, []).append(WriteRecord(task_id, idx, channel, bytes(data)))
        return storage.read_tuples(
            records, self._cache, lambda pairs: self._fetch(thread_id, pairs), writes
        )


def _blobs(rows: Iterable[models.FieldVersion] | Any) -> dict[Pair, Blob]:
    return {
        (f, v): Blob(f, v, kind, base or None, bytes(data))
        for f, v, kind, base, data in rows.values_list("field", "version", "kind", "base", "data")
    }


def _field_version(thread_pk: int, blob: Blob) -> models.FieldVersion:
    return models.FieldVersion(
        thread_id=thread_pk, field=blob.field, version=blob.version, kind=blob.kind,
        base=blob.base or "", data=blob.data,
    )


def _record(thread_id: str, row: tuple[Any, ...]) -> CheckpointRecord:
    cid, parent_id, step, source, next_, versions, internal, meta, extra = row
    return CheckpointRecord(
        thread_id=thread_id,
        checkpoint_id=cid,
        parent_id=parent_id,
        step=step,
        source=source,
        next=tuple(next_),
        versions=versions,
        internal=bytes(internal),
        meta=bytes(meta),
        extra_json=extra,
        ts=datetime.min,  # the exact ts lives in `meta`
    )


def _aware(ts: datetime) -> datetime:
    # `created_at` is for people and ordering; the exact ts (naive or not) lives in `meta`.
    return ts if ts.utcoffset() is not None else ts.replace(tzinfo=UTC)
