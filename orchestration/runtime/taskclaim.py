"""A task worker's claim of its next task row on PostgreSQL: one statement.

django-tasks-db claims in a transaction of four round trips (BEGIN; the ORM's
`SELECT ... FOR UPDATE SKIP LOCKED` of the first ready row; `save()` of its RUNNING status,
start time and worker id; COMMIT), each ORM statement compiled afresh. A worker claims once
per task plus once more when it goes idle (three tasks per review cycle): the claim was a
sixth of a worker's CPU per cycle. Here the same choice and the same change are one
`UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING` in autocommit, whose
text is built once per worker:

- the same rows are ready (`DBTaskResultQuerySet.ready`: READY, and no `run_after` or one
  that has passed), of the worker's backend and queues, taken in the model's order
  (priority, then `run_after`, then `enqueued_at`: the partial index `tasks_db_new_ordering_idx`);
- SKIP LOCKED as `get_locked`: two workers never wait on, nor take, the same row. The row is
  locked by the subquery and changed by the UPDATE in one statement, so a claim is as atomic
  as the library's transaction (a worker dying mid-statement leaves the row READY);
- the row changes as `DBTaskResult.claim` changes it (status, `started_at`, the worker id
  appended to `worker_ids`), and comes back as a `DBTaskResult` with Django's field
  conversions (a `RawQuerySet`), for the library's `run_task`.

Other databases (SQLite) keep the library's claim.
"""

from __future__ import annotations

from django.db import connections
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

__all__ = ["TaskClaim"]


class TaskClaim:
    """The claim statement of one worker: its backend, queues and id are fixed."""

    def __init__(
        self,
        *,
        using: str,
        backend_name: str,
        worker_id: str,
        queue_names: list[str] | None,
        excluded_queue_names: list[str],
    ) -> None:
        self.using = using
        meta = DBTaskResult._meta
        table = connections[using].ops.quote_name(meta.db_table)
        columns = ", ".join(
            connections[using].ops.quote_name(field.column) for field in meta.concrete_fields
        )
        where = ["status = 'READY'", "(run_after = %s OR run_after <= %s)", "backend_name = %s"]
        self.fixed: list[object] = [backend_name]
        if queue_names is not None:  # None: every queue ("*")
            where.append("queue_name = ANY(%s)")
            self.fixed.append(list(queue_names))
        if excluded_queue_names:
            where.append("NOT queue_name = ANY(%s)")
            self.fixed.append(list(excluded_queue_names))
        self.worker_id = worker_id
        # names from the model, values as parameters
        self.sql = (
            f"UPDATE {table} SET status = 'RUNNING', started_at = %s, "  # noqa: S608
            "worker_ids = worker_ids || jsonb_build_array(%s::text) "
            f"WHERE id = (SELECT id FROM {table} WHERE {' AND '.join(where)} "
            "ORDER BY priority DESC, run_after ASC, enqueued_at ASC "
            f"LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {columns}"
        )

    def next(self) -> DBTaskResult | None:
        """Claim the next ready task for this worker, or None if there is none."""
        now = timezone.now()
        params = [now, self.worker_id, get_date_max(), now, *self.fixed]
        rows = list(DBTaskResult.objects.using(self.using).raw(self.sql, params))
        return rows[0] if rows else None
