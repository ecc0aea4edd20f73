"""Threads, the checkpoint tree, pending writes and runs, as Django rows.

Storage follows the SQLite saver's design: a checkpoint row holds only small metadata and
each field's *version*; field values live in `FieldVersion` rows written only when a field
changes, and an append-only field stores just what was appended (`kind = append`). A small new
version is kept in the row of the checkpoint that created it (`Checkpoint.vals`) instead, as
the engine's SQLite saver does; readers look in both places.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import ProtectedError, Q

from orchestration.runtime.errors import AuditTrailProtected


class Thread(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for review"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        STALLED = "stalled", "Stalled"

    thread_id = models.CharField(max_length=200, unique=True)
    # no index of its own, nor a LIKE twin (nothing matches graph names by pattern): the
    # composite indexes below lead with it
    graph_name = models.CharField(max_length=100, blank=True)
    title = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    head_checkpoint_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The lists' orders under their filters, so that a page reads its rows in order
        # instead of sorting every matching thread (100,000 threads: the API's list took
        # 139 ms, 96 of them sorting): the pages newest updated first, the API newest
        # created first (its keyset cursor). Each index costs every insert of a thread and
        # each change of its columns; the head moving at every superstep changes none.
        indexes = [
            models.Index(fields=["status", "-updated_at"], name="thread_status_updated"),
            models.Index(fields=["-updated_at"], name="thread_updated"),
            models.Index(fields=["graph_name", "-updated_at"], name="thread_graph_updated"),
            models.Index(fields=["-created_at", "-id"], name="thread_created"),
            models.Index(fields=["status", "-created_at", "-id"], name="thread_status_created"),
            models.Index(fields=["graph_name", "-created_at", "-id"], name="thread_graph_created"),
        ]

    def __str__(self) -> str:
        return self.title or self.thread_id

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        """Refused while the thread has audit rows (events, decisions): they are append-only
        and PROTECT the thread (`orchestration.runtime.audit`). Cancel the thread instead."""
        try:
            return super().delete(*args, **kwargs)
        except ProtectedError as exc:
            raise AuditTrailProtected(self.thread_id, exc.protected_objects) from exc


class Checkpoint(models.Model):
    """One node of a thread's checkpoint tree."""

    # No index of its own: `checkpoint_unique_id` (thread, checkpoint_id) serves lookups by
    # thread, the history (scanned backwards) and `before=` pagination; every index is paid on
    # every superstep's insert.
    thread = models.ForeignKey(
        Thread, on_delete=models.CASCADE, related_name="checkpoints", db_index=False
    )
    checkpoint_id = models.CharField(max_length=64)
    # "" for the thread's own graph; a subgraph's node path ("outer|inner") for its checkpoints
    checkpoint_ns = models.CharField(max_length=200, blank=True, default="", db_default="")
    # Checkpoints are deleted a whole thread at a time (`delete_thread`, a thread's own
    # deletion), parents with their children: no cascade to walk. On SQLite the column has
    # neither index nor constraint (migration 0012: one B-tree page less per put).
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="children"
    )
    step = models.IntegerField()
    source = models.CharField(max_length=10)
    next = models.JSONField(default=list)
    # field name -> version (the checkpoint id that last changed the field)
    versions = models.JSONField(default=dict)
    # serialized engine bookkeeping and metadata.writes / metadata.extra (serde bytes)
    internal = models.BinaryField(default=bytes)
    writes = models.BinaryField(default=bytes)
    extra = models.JSONField(default=dict, blank=True)
    # serde bytes of [[field, kind, base, data]...]: small field versions this checkpoint
    # created, kept in its row instead of `FieldVersion` rows (fewer rows, index entries and
    # WAL per superstep). NULL: all of them are `FieldVersion` rows (big ones, older rows).
    vals = models.BinaryField(null=True, blank=True)
    # the nodes whose writes made this checkpoint, so the tree can label it without decoding
    written_by = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()
    # who caused an `update` / `fork` checkpoint, and why
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )
    reason = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["thread", "checkpoint_id"], name="checkpoint_unique_id"
            ),
        ]
        # Checkpoint ids sort by creation time within a thread: the unique index serves the
        # history, the latest checkpoint and `before=` pagination. `created_by` is set only
        # on `update`/`fork` checkpoints: indexed where set (deleting a user), not per row.
        indexes = [
            models.Index(
                fields=["created_by"], condition=models.Q(created_by__isnull=False),
                name="checkpoint_created_by",
            ),
            # A subgraph's checkpoints, for the tree's folds (`selectors.subgraph_rows`):
            # without it that query read every row of the thread (2.5 ms at 10,000 on
            # PostgreSQL, on every page, unfold and live update). Partial: a root checkpoint,
            # every superstep's, adds no entry.
            models.Index(
                fields=["thread", "checkpoint_id"], condition=~models.Q(checkpoint_ns=""),
                name="checkpoint_subgraph_rows",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.thread_id}:{self.checkpoint_id} (step {self.step}, {self.source})"


class FieldVersion(models.Model):
    """One version of one state field. `full` holds the value; `append` holds the items
    appended to `base` (the previous version of the same field)."""

    class Kind(models.TextChoices):
        FULL = "full", "Full value"
        APPEND = "append", "Appended items"

    # Indexed by `field_version_unique` (thread, field, version).
    thread = models.ForeignKey(
        Thread, on_delete=models.CASCADE, related_name="field_versions", db_index=False
    )
    field = models.CharField(max_length=200)
    version = models.CharField(max_length=64)
    kind = models.CharField(max_length=6, choices=Kind.choices)
    base = models.CharField(max_length=64, blank=True)
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["thread", "field", "version"], name="field_version_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.field}@{self.version} ({self.kind})"


class PendingWrite(models.Model):
    # Indexed by `pending_write_unique` (checkpoint, task_id, idx).
    checkpoint = models.ForeignKey(
        Checkpoint, on_delete=models.CASCADE, related_name="pending", db_index=False
    )
    task_id = models.CharField(max_length=100)
    idx = models.IntegerField()
    channel = models.CharField(max_length=200)
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "task_id", "idx"], name="pending_write_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"write {self.task_id}#{self.idx} -> {self.channel}"


class RunManager(models.Manager["Run"]):
    def close_paused(self, thread_id: int) -> int:
        """A new run of the thread moves it past its pause: its waiting runs become answered,
        so "waiting for review" is only ever said of a run that still waits."""
        return self.filter(thread_id=thread_id, status=Run.Status.WAITING).update(
            status=Run.Status.ANSWERED
        )


class Run(models.Model):
    """One execution of a thread by a worker: start, resume, fork or retry.

    A run that pauses at interrupts is `waiting` until the thread moves on with a new run;
    then it is `answered`: a resume carried its reviews' answers on, or a fork ("decide
    differently", an edit of past state) branched past them. (The HTTP API's run statuses
    are these values: one `answered`, no separate status for a fork.)
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for review"
        ANSWERED = "answered", "Answered"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        STALLED = "stalled", "Stalled"

    # A stalled run still owns its thread: it resumes from the thread's last checkpoint, so a
    # second run started meanwhile would race it for the same branch.
    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.STALLED)
    # nothing more happens to these (the thread may go on in later runs)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.ANSWERED)

    class Kind(models.TextChoices):
        START = "start", "Start"
        RESUME = "resume", "Resume"
        FORK = "fork", "Fork"
        RETRY = "retry", "Retry"

    # Indexed by `run_thread_created` (thread, -created_at); `previous` where set (a thread's
    # first run has none) by `run_previous`: a run's row is inserted once and its indexed
    # columns (status) change three or four times, each time in every index.
    thread = models.ForeignKey(
        Thread, on_delete=models.CASCADE, related_name="runs", db_index=False
    )
    # the run this one continues (resume after a review, retry of a failure, fork)
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # serde bytes of the input / Command the run starts with; checkpoint to fork from
    input = models.BinaryField(default=bytes)
    from_checkpoint_id = models.CharField(max_length=64, blank=True)
    as_node = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    lease_token = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    task_result_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunManager()

    class Meta:
        constraints = [
            # At most one active run per thread, enforced by the database.
            models.UniqueConstraint(
                fields=["thread"],
                condition=Q(status__in=["queued", "running", "stalled"]),
                name="run_one_active_per_thread",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="run_status_created"),
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="running"),
                name="run_running_lease",
            ),
            models.Index(fields=["thread", "-created_at"], name="run_thread_created"),
            models.Index(
                fields=["previous"], condition=Q(previous__isnull=False), name="run_previous"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of thread {self.thread_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class Event(models.Model):
    """What happened, in order: pushed live to open pages and kept as the audit trail.

    Workers in another process write events here; pages poll this table when no shared
    channel layer (Redis) carries them, so live updates work in the SQLite profile too.
    Append-only in the database (`orchestration.runtime.audit`): rows are never changed or
    deleted, and the thread, run and user they name cannot be deleted from under them.
    """

    kind = models.CharField(max_length=50)
    # Several events per run: `thread` is indexed by `event_thread` (thread, id) alone, and
    # `actor`, set only on what a person did, by `event_actor` where set (the PROTECT check
    # when a user is deleted asks `actor_id IN (...)`, which implies it).
    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.PROTECT, related_name="events",
        db_index=False,
    )
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        db_index=False,
    )
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["thread", "id"], name="event_thread"),
            models.Index(fields=["actor"], condition=Q(actor__isnull=False), name="event_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class StoreItem(models.Model):
    """One value of the store (`orchestration.savers.DjangoStore`): memory across threads."""

    # the namespace's labels joined by "." (labels may not contain one), e.g. "customers.c-42"
    namespace = models.CharField(max_length=500)
    key = models.CharField(max_length=200)
    value = models.BinaryField()  # serde bytes (no pickle), as checkpoints
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["namespace", "key"], name="store_item_unique_key")
        ]
        # `namespace` range scans serve prefix searches (text_pattern_ops would only serve LIKE)
        indexes = [models.Index(fields=["namespace", "id"], name="store_item_namespace")]

    def __str__(self) -> str:
        return f"{self.namespace} / {self.key}"


class RunOutput(models.Model):
    """What a run's nodes streamed while they ran (`get_stream_writer()`, mode `custom`):
    kept with the run, so a page opened later shows the text a model streamed."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="outputs")
    seq = models.IntegerField()
    # the subgraph path of the node that wrote it ("" for the thread's own graph)
    namespace = models.CharField(max_length=200, blank=True, default="")
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="run_output_seq")]

    def __str__(self) -> str:
        return f"run {self.run_id} output {self.seq}"
class WorkerProcess(models.Model):
    """One task-worker process, as it reports itself: `last_seen_at` is renewed every few
    seconds while it lives (busy or idle), so `/readyz`, `/metrics` and ops can tell a live
    worker pool from a dead one without waiting for a run's lease to expire."""

    worker_id = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    # set on a clean shutdown; a killed worker leaves it empty and simply stops being seen
    stopped_at = models.DateTimeField(null=True, blank=True)
    beats = models.PositiveBigIntegerField(default=0)
    # the task queues it takes, comma-separated, or "*" for every queue (queues.py): ops and
    # /readyz tell a pool that runs nothing from one that sends nothing
    queues = models.CharField(max_length=200, default="*")

    def __str__(self) -> str:
        return f"worker {self.worker_id}"
