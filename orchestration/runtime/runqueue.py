"""The statements of queueing a run, fixed once per process instead of an ORM queryset
compiled on every decision and start.

A decision's request queued its run through five ORM statements (the locking read of the
thread's active run, its latest run, the run's insert, the paused runs closed, the thread
marked running) and `publish`'s event insert; compiling them was several CPU-ms of the
server's ~20 per decision. Here:

- `lock_active_run` and `latest_run_id` are the same reads as fixed statements (portable;
  the lock is `FOR UPDATE` where the database has it, as `select_for_update` does);
- `insert_run` on PostgreSQL is one statement whose data-modifying parts commit with the
  caller's transaction: the run's insert (the values the ORM's insert would send, from the
  same unsaved instance), the thread's waiting runs answered and the thread marked running
  (unless the thread was just created), and the `run_queued` event, pushed as `publish`
  pushes it. The one-active-run constraint refuses a run committed meanwhile exactly as
  before (an IntegrityError naming it). On SQLite the same writes as fixed statements
  (`_insert_run_sqlite`); elsewhere the ORM's statements, as before;
- `insert_run_unless_active` is a decision's: the same writes, but the run's insert does
  nothing (`ON CONFLICT DO NOTHING` on the one-active-run index) when the thread has an
  active run, and its `previous_id` is read by the insert itself. The caller needs neither
  the locking read before it nor a savepoint around it (nothing is refused); it locks the
  active run only when nothing was inserted;
- with a `taskrow.RunTask` (its id chosen before the insert), the run is inserted pointing at
  its task row, and on PostgreSQL the same statement inserts that row and notifies the
  workers (a decision: 12 statements -> 6; a start: 5 -> 4).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.utils import timezone

from orchestration.runtime import rowread
from orchestration.runtime.events import announce, publish
from orchestration.runtime.models import Event, Run, Thread

if TYPE_CHECKING:
    from orchestration.runtime.taskrow import RunTask

__all__ = ["insert_run", "insert_run_unless_active", "insert_thread_and_run", "latest_run_id",
           "lock_active_run", "set_task_result"]


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


@functools.cache
def _active_sql(vendor: str) -> str:
    statuses = ", ".join(f"'{str(s)}'" for s in Run.ACTIVE)  # the model's own constants
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return (f"SELECT {rowread.columns(Run)} FROM {_q(Run._meta.db_table)} "  # noqa: S608 - model names
            f"WHERE thread_id = %s AND status IN ({statuses}) ORDER BY id DESC LIMIT 1{lock}")


def lock_active_run(thread: Thread) -> Run | None:
    """The thread's newest queued, running or stalled run, its row locked (PostgreSQL), as
    `Run.objects.select_for_update().filter(thread=..., status__in=ACTIVE).order_by("-pk")
    .first()` reads it."""
    with connection.cursor() as cursor:
        cursor.execute(_active_sql(connection.vendor), [thread.pk])
        row = cursor.fetchone()
    return None if row is None else rowread.instance(Run, row)  # type: ignore[return-value]


@functools.cache
def _latest_sql(vendor: str) -> str:
    return (f"SELECT id FROM {_q(Run._meta.db_table)} WHERE thread_id = %s "  # noqa: S608
            "ORDER BY created_at DESC, id DESC LIMIT 1")


def latest_run_id(thread: Thread) -> int | None:
    """The id of the thread's latest run (`runs._latest_run`'s order), or None."""
    with connection.cursor() as cursor:
        cursor.execute(_latest_sql(connection.vendor), [thread.pk])
        row = cursor.fetchone()
    return None if row is None else row[0]


@functools.cache
def _task_result_sql(vendor: str) -> str:
    return f"UPDATE {_q(Run._meta.db_table)} SET task_result_id = %s WHERE id = %s"  # noqa: S608


def set_task_result(run_id: int, result_id: str) -> None:
    """`Run.objects.filter(pk=run_id).update(task_result_id=result_id)`."""
    with connection.cursor() as cursor:
        cursor.execute(_task_result_sql(connection.vendor), [result_id, run_id])


# ---------------------------------------------------------------- the run's insert


def _insert_fields() -> list[Any]:
    return [f for f in Run._meta.concrete_fields if not f.primary_key]


@functools.cache
def _insert_sql(new_thread: bool, with_task: bool) -> str:
    run, thread, event = (_q(m._meta.db_table) for m in (Run, Thread, Event))
    fields = _insert_fields()
    columns = ", ".join(_q(f.column) for f in fields)
    values = ", ".join(["%s"] * len(fields))
    task_cte, notify = _task_parts(with_task)
    # the paused runs and the thread move only when the thread existed before this run
    moves = "" if new_thread else (
        f"p AS (UPDATE {run} SET status = 'answered' "  # noqa: S608
        f"WHERE thread_id = %s AND status = 'waiting'), "
        f"t AS (UPDATE {thread} SET status = 'running', updated_at = %s WHERE id = %s), ")
    return (
        f"WITH r AS (INSERT INTO {run} ({columns}) VALUES ({values}) RETURNING id), "  # noqa: S608
        f"{moves}"
        f"e AS (INSERT INTO {event} (kind, thread_id, run_id, actor_id, reason, data, created_at) "
        f"SELECT 'run_queued', %s, r.id, %s, %s, %s, %s FROM r RETURNING id){task_cte} "
        f"SELECT r.id, e.id{notify} FROM r, e{', k' if with_task else ''}"
    )


def insert_run(run: Run, thread: Thread, *, new_thread: bool, actor: Any, reason: str,
               data: dict[str, Any], task: RunTask | None = None) -> None:
    """Insert the unsaved `run` of `thread`; unless `new_thread`, answer the thread's waiting
    runs and mark it running; record the `run_queued` event (actor, reason, data) and push
    it; `task` (its id already the run's `task_result_id`): the run's task row too. One
    statement on PostgreSQL, fixed ones on SQLite (`_insert_run_sqlite`), the ORM's
    elsewhere; `run` is saved after any (its pk set, as `Run.objects.create` leaves it)."""
    if connection.vendor == "sqlite":
        _insert_run_sqlite(run, thread, new_thread=new_thread, actor=actor, reason=reason,
                           data=data, task=task)
        return
    if connection.vendor != "postgresql":
        _insert_run_orm(run, thread, new_thread=new_thread, actor=actor, reason=reason,
                        data=data)
        if task is not None:
            task.insert(run.pk)
        return
    # the values the ORM's insert compiler sends: each field's pre_save (created_at's now),
    # then its value prepared for the database
    params: list[Any] = [f.get_db_prep_save(f.pre_save(run, True), connection)
                         for f in _insert_fields()]
    if not new_thread:
        params += [thread.pk, timezone.now(), thread.pk]
    data_field = Event._meta.get_field("data")
    params += [thread.pk, getattr(actor, "pk", None), reason,
               data_field.get_db_prep_save(data, connection), timezone.now()]
    if task is not None:
        params += task.params
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(new_thread, task is not None), params)
        run_id, event_id = cursor.fetchone()[:2]
    if task is not None:
        task.inserted()
    _saved(run, run_id)
    announce(event_id, "run_queued", thread=thread, run=run)


# ------------------------------------------------- a resume run, unless one is active


def _active_statuses() -> str:
    return ", ".join(f"'{str(s)}'" for s in Run.ACTIVE)  # the model's own constants


@functools.cache
def _unless_active_insert(vendor: str) -> str:
    """The run's insert, nothing when the thread has an active run: `ON CONFLICT DO NOTHING`
    against the one-active-run partial unique index (`run_one_active_per_thread`: its column
    and its WHERE, which both databases need spelled out to infer it), `previous_id` the
    thread's latest run (`latest_run_id`'s order) read by the same statement."""
    run = _q(Run._meta.db_table)
    fields = _insert_fields()
    columns = ", ".join(_q(f.column) for f in fields)
    latest = (f"(SELECT id FROM {run} WHERE thread_id = %s "  # noqa: S608 - model names
              "ORDER BY created_at DESC, id DESC LIMIT 1)")
    values = ", ".join(latest if f.attname == "previous_id" else "%s" for f in fields)
    return (f"INSERT INTO {run} ({columns}) VALUES ({values}) "  # noqa: S608
            f"ON CONFLICT (thread_id) WHERE status IN ({_active_statuses()}) DO NOTHING "
            "RETURNING id, previous_id")


@functools.cache
def _unless_active_pg(with_task: bool) -> str:
    run, thread, event = (_q(m._meta.db_table) for m in (Run, Thread, Event))
    task_cte, notify = _task_parts(with_task)
    # the moves, the event (and the task row) only when the run was inserted
    return (
        f"WITH r AS ({_unless_active_insert('postgresql')}), "  # noqa: S608 - model names
        f"p AS (UPDATE {run} SET status = 'answered' "
        "WHERE thread_id = %s AND status = 'waiting' AND EXISTS (SELECT 1 FROM r)), "
        f"t AS (UPDATE {thread} SET status = 'running', updated_at = %s "
        "WHERE id = %s AND EXISTS (SELECT 1 FROM r)), "
        f"e AS (INSERT INTO {event} (kind, thread_id, run_id, actor_id, reason, data, created_at) "
        f"SELECT 'run_queued', %s, r.id, %s, %s, %s, %s FROM r RETURNING id){task_cte} "
        f"SELECT r.id, r.previous_id, e.id{notify} FROM r, e{', k' if with_task else ''}"
    )


def _task_parts(with_task: bool) -> tuple[str, str]:
    """The task row's CTE (", k AS (...)") and the notification column (", pg_notify(...)")
    of a run's statement that inserts its task row too (`taskrow.RunTask`)."""
    if not with_task:
        return "", ""
    from orchestration.runtime.taskrow import run_task_cte

    cte, notify = run_task_cte()
    return f", {cte}", f", {notify}"


@functools.cache
def _moves_sqlite() -> tuple[str, str, str]:
    run, thread, event = (_q(m._meta.db_table) for m in (Run, Thread, Event))
    return (
        f"UPDATE {run} SET status = 'answered' WHERE thread_id = %s AND status = 'waiting'",  # noqa: S608
        f"UPDATE {thread} SET status = 'running', updated_at = %s WHERE id = %s",  # noqa: S608
        f"INSERT INTO {event} (kind, thread_id, run_id, actor_id, reason, data, created_at) "  # noqa: S608
        "VALUES ('run_queued', %s, %s, %s, %s, %s, %s) RETURNING id",
    )


def insert_run_unless_active(run: Run, thread: Thread, *, actor: Any, reason: str,
                             data: dict[str, Any], task: RunTask | None = None) -> bool:
    """Insert the unsaved resume `run` of `thread` after its latest run (`run.previous_id`
    is set to it), answer its waiting runs, mark it running and record the `run_queued`
    event, as `insert_run` does; unless the thread has a queued, running or stalled run:
    then nothing is written and False is returned (the caller adds its answers to that
    run). An active run committed by a concurrent transaction counts too: PostgreSQL's
    insert waits for it and then does nothing; SQLite has one writer at a time. Nothing
    is refused, so the caller needs no savepoint. One statement on PostgreSQL, four on
    SQLite (fixed once per process); elsewhere the ORM's, as `insert_run` sends them.
    `task` (its id already the run's `task_result_id`): the run's task row, written with
    the run (by the same statement on PostgreSQL), not at all if the run is not."""
    if connection.vendor not in ("postgresql", "sqlite"):
        inserted = _insert_run_unless_active_orm(run, thread, actor=actor, reason=reason,
                                                 data=data)
        if inserted and task is not None:
            task.insert(run.pk)
        return inserted
    fields = _insert_fields()
    params: list[Any] = [
        thread.pk if f.attname == "previous_id"
        else f.get_db_prep_save(f.pre_save(run, True), connection) for f in fields]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_unless_active_pg(task is not None),
                           [*params, thread.pk, _now(Thread, "updated_at"), thread.pk,
                            thread.pk, *_event_values(actor, reason, data),
                            *(task.params if task is not None else ())])
            row = cursor.fetchone()
            if row is None:
                return False
            run_id, previous_id, event_id = row[:3]
            if task is not None:
                task.inserted()
        else:
            cursor.execute(_unless_active_insert("sqlite"), params)
            row = cursor.fetchone()
            if row is None:
                return False
            run_id, previous_id = row
            event_id = _moves_and_event_sqlite(cursor, thread, run_id, moves=True,
                                               actor=actor, reason=reason, data=data)
        if task is not None and not task.written:
            task.insert(run_id)
    run.previous_id = previous_id
    _saved(run, run_id)
    announce(event_id, "run_queued", thread=thread, run=run)
    return True


def _insert_run_unless_active_orm(run: Run, thread: Thread, *, actor: Any, reason: str,
                                  data: dict[str, Any]) -> bool:
    from django.db import IntegrityError, transaction

    if lock_active_run(thread) is not None:
        return False
    run.previous_id = latest_run_id(thread)
    try:
        with transaction.atomic():  # a run committed meanwhile: the constraint refuses
            _insert_run_orm(run, thread, new_thread=False, actor=actor, reason=reason,
                            data=data)
    except IntegrityError:
        run.pk = None
        run._state.adding = True
        return False
    return True


@functools.cache
def _start_sql(with_task: bool) -> str:
    thread, run, event = (_q(m._meta.db_table) for m in (Thread, Run, Event))
    thread_fields, run_fields = _thread_insert_fields(), _insert_fields()
    thread_columns = ", ".join(_q(f.column) for f in thread_fields)
    run_columns = ", ".join(_q(f.column) for f in run_fields)
    run_values = ", ".join("th.id" if f.attname == "thread_id" else "%s" for f in run_fields)
    task_cte, notify = _task_parts(with_task)
    return (
        f"WITH th AS (INSERT INTO {thread} ({thread_columns}) "  # noqa: S608 - model names
        f"VALUES ({', '.join(['%s'] * len(thread_fields))}) RETURNING id), "
        f"r AS (INSERT INTO {run} ({run_columns}) SELECT {run_values} FROM th RETURNING id), "
        f"e AS (INSERT INTO {event} (kind, thread_id, run_id, actor_id, reason, data, created_at) "
        f"SELECT 'run_queued', th.id, r.id, %s, %s, %s, %s FROM th, r RETURNING id){task_cte} "
        f"SELECT th.id, r.id, e.id{notify} FROM th, r, e{', k' if with_task else ''}"
    )


def _thread_insert_fields() -> list[Any]:
    return [f for f in Thread._meta.concrete_fields if not f.primary_key]


def insert_thread_and_run(thread: Thread, run: Run, *, actor: Any, reason: str,
                          data: dict[str, Any], task: RunTask | None = None) -> None:
    """Insert the unsaved `thread`, its unsaved first `run` and the `run_queued` event (and
    push it), and `task` if given (the run's task row, its id already the run's
    `task_result_id`): one statement on PostgreSQL, fixed ones on SQLite, `thread.save()`
    then `insert_run` elsewhere. A thread id taken already is refused by the same unique
    constraint as the ORM's insert."""
    if connection.vendor != "postgresql":
        # as the ORM would, by fixed statements on SQLite (no signal receivers on threads)
        if connection.vendor == "sqlite":
            _insert_thread_sqlite(thread)
        else:
            thread.save(force_insert=True)
        run.thread = thread
        insert_run(run, thread, new_thread=True, actor=actor, reason=reason, data=data,
                   task=task)
        return
    params: list[Any] = [f.get_db_prep_save(f.pre_save(thread, True), connection)
                         for f in _thread_insert_fields()]
    params += [f.get_db_prep_save(f.pre_save(run, True), connection)
               for f in _insert_fields() if f.attname != "thread_id"]
    params += [getattr(actor, "pk", None), reason,
               Event._meta.get_field("data").get_db_prep_save(data, connection), timezone.now()]
    if task is not None:
        params += task.params
    with connection.cursor() as cursor:
        cursor.execute(_start_sql(task is not None), params)
        thread_id, run_id, event_id = cursor.fetchone()[:3]
    if task is not None:
        task.inserted()
    _saved(thread, thread_id)
    _saved(run, run_id)
    run.thread = thread  # its thread_id, and the instance cached as the ORM's create leaves it
    announce(event_id, "run_queued", thread=thread, run=run)


@functools.cache
def _sqlite_inserts() -> tuple[str, str]:
    """SQLite: the thread's and the run's inserts, fixed once (returning their ids)."""
    def insert(model: Any, fields: list[Any]) -> str:
        return (f"INSERT INTO {_q(model._meta.db_table)} "  # noqa: S608 - model names
                f"({', '.join(_q(f.column) for f in fields)}) "
                f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id")

    return insert(Thread, _thread_insert_fields()), insert(Run, _insert_fields())


def _now(model: Any, field: str) -> Any:
    return model._meta.get_field(field).get_db_prep_save(timezone.now(), connection)


def _event_values(actor: Any, reason: str, data: dict[str, Any]) -> list[Any]:
    """The `run_queued` event's actor, reason, data and creation time, prepared."""
    return [getattr(actor, "pk", None), reason,
            Event._meta.get_field("data").get_db_prep_save(data, connection),
            _now(Event, "created_at")]


def _moves_and_event_sqlite(cursor: Any, thread: Thread, run_id: int, *, moves: bool,
                            actor: Any, reason: str, data: dict[str, Any]) -> int:
    """SQLite, after a run's insert: the thread's waiting runs answered and the thread
    marked running (`moves`), then the `run_queued` event; the event's id."""
    paused, moved, event = _moves_sqlite()
    if moves:
        cursor.execute(paused, [thread.pk])
        cursor.execute(moved, [_now(Thread, "updated_at"), thread.pk])
    cursor.execute(event, [thread.pk, run_id, *_event_values(actor, reason, data)])
    return cursor.fetchone()[0]


def _saved(obj: Any, pk: int) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias


def _insert_thread_sqlite(thread: Thread) -> None:
    """`thread.save(force_insert=True)` (no signal receivers on threads) by a fixed
    statement; a taken thread id is refused by the same unique constraint."""
    params = [f.get_db_prep_save(f.pre_save(thread, True), connection)
              for f in _thread_insert_fields()]
    with connection.cursor() as cursor:
        cursor.execute(_sqlite_inserts()[0], params)
        _saved(thread, cursor.fetchone()[0])


def _insert_run_sqlite(run: Run, thread: Thread, *, new_thread: bool, actor: Any, reason: str,
                       data: dict[str, Any], task: RunTask | None) -> None:
    """`insert_run` on SQLite: the run's insert, the moves unless `new_thread`, the event
    (and `task`'s row), each a statement fixed once per process instead of the ORM's."""
    params = [f.get_db_prep_save(f.pre_save(run, True), connection) for f in _insert_fields()]
    with connection.cursor() as cursor:
        cursor.execute(_sqlite_inserts()[1], params)
        _saved(run, cursor.fetchone()[0])
        event_id = _moves_and_event_sqlite(cursor, thread, run.pk, moves=not new_thread,
                                           actor=actor, reason=reason, data=data)
    if task is not None:
        task.insert(run.pk)
    announce(event_id, "run_queued", thread=thread, run=run)


def _insert_run_orm(run: Run, thread: Thread, *, new_thread: bool, actor: Any, reason: str,
                    data: dict[str, Any]) -> None:
    """`insert_run` through the ORM: what it did on every database before, and still does
    where there is no single statement for it."""
    run.save(force_insert=True)
    if not new_thread:
        Run.objects.close_paused(thread.pk)
        Thread.objects.filter(pk=thread.pk).update(
            status=Thread.Status.RUNNING, updated_at=timezone.now())
    publish("run_queued", run=run, thread=thread, actor=actor, reason=reason, data=data)
