"""The indexes of the tables a review cycle writes: each one is paid by every insert, and by
every update that changes an indexed column, so none may be one that another index serves."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, models
from django.db.migrations.executor import MigrationExecutor

from approvals.models import Decision, ReviewRequest
from orchestration.runtime.models import (
    Checkpoint,
    Event,
    FieldVersion,
    PendingWrite,
    Run,
    Thread,
)
from orchestration.runtime.thread_search import FTS

CYCLE_TABLES = [Thread, Run, Event, Checkpoint, FieldVersion, PendingWrite, ReviewRequest,
                Decision]


def _partial(model: type[models.Model]) -> set[str]:
    """Names of the model's indexes and unique constraints that cover some rows only: they
    serve no lookup of the rows they leave out."""
    return {
        *(index.name for index in model._meta.indexes if index.condition is not None),
        *(c.name for c in model._meta.constraints if getattr(c, "condition", None) is not None),
    }


def _served_by_another(model: type[models.Model]) -> list[tuple[str, str]]:
    """(index, the index that serves it): non-unique indexes whose columns lead another,
    complete, index of the same table."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    partial = _partial(model)
    complete = {name: c["columns"] for name, c in found.items()
                if (c["index"] or c["unique"] or c["primary_key"]) and name not in partial}
    served = []
    for name, c in found.items():
        if not c["index"] or c["unique"] or c["primary_key"] or name.endswith("_like"):
            continue
        columns = c["columns"]
        if not columns or None in columns:
            continue  # an index of an expression (the threads search's): a prefix of none
        for other, other_columns in complete.items():
            if other != name and other_columns[: len(columns)] == columns \
                    and len(other_columns) > len(columns):
                served.append((name, other))
    return served


@pytest.mark.django_db
@pytest.mark.parametrize("model", CYCLE_TABLES, ids=lambda m: m._meta.db_table)
def test_no_index_a_review_cycle_writes_is_served_by_another(model: type[models.Model]) -> None:
    assert _served_by_another(model) == []


@pytest.mark.django_db
def test_foreign_keys_most_rows_leave_unset_are_indexed_where_set() -> None:
    """A thread's first run continues none, most events have no person behind them, most
    reviews are never claimed or re-answered: their index holds only the rows that name one
    (the delete of a user or a run still finds them by it)."""
    expected = {
        Run: ("run_previous", "previous_id"),
        Event: ("event_actor", "actor_id"),
        ReviewRequest: ("review_claimed_by", "claimed_by_id"),
    }
    for model, (name, column) in expected.items():
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, model._meta.db_table)
        on_column = sorted(n for n, c in found.items()
                           if c["index"] and not c["unique"] and c["columns"] == [column])
        assert on_column == [name], model
        assert name in _partial(model)


@pytest.mark.django_db(transaction=True)
def test_the_index_migrations_keep_the_audit_triggers_and_go_back() -> None:
    """Only indexes change: on SQLite no table is rebuilt (a rebuild drops the append-only
    triggers of the event table), and the migrations can be unapplied."""
    def triggers() -> set[str]:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            else:
                cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
            return {name for (name,) in cursor.fetchall()}

    before = triggers()
    assert before  # the audit trail's triggers are there to keep
    executor = MigrationExecutor(connection)
    executor.migrate([("approvals", "0006_decision_ignore"),
                      ("orchestration", "0009_sqlite_head_trigger")])
    # the threads search's index is kept by triggers of a later migration (0016)
    assert triggers() == {t for t in before if not t.startswith(FTS)}
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, Event._meta.db_table)
    assert "event_actor" not in found
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert triggers() == before
    assert _served_by_another(Event) == []


@pytest.mark.django_db
def test_a_threads_subgraph_checkpoints_are_read_from_their_own_index() -> None:
    """The tree asks for a thread's subgraph checkpoints on every page, unfold and live
    update. Through the unique index that read every row of the thread (3.3 ms of
    PostgreSQL's time at 10,000 checkpoints against 0.06 ms, `manage.py measure_pages`'s
    thread); the plan must name the partial index of subgraph rows. PostgreSQL is asked
    with sequential scans off: on a test's few rows it would rightly read the table."""
    from approvals.selectors import subgraph_rows

    thread = Thread.objects.create(thread_id="subgraph-rows")
    sql, params = subgraph_rows(thread).query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
        else:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = " ".join(row[0] for row in cursor.fetchall())
    assert "checkpoint_subgraph_rows" in plan, plan


def _plan(sql: str, params: Any) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            return " ".join(str(row[-1]) for row in cursor.fetchall())
        cursor.execute(f"EXPLAIN {sql}", params)
        return " ".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
@pytest.mark.parametrize("status, graph", [("", ""), ("done", ""), ("", "expense")])
def test_the_thread_lists_read_their_rows_in_order(status: str, graph: str) -> None:
    """A page of threads reads its rows in the list's order from an index, under each filter,
    instead of sorting every matching thread: at 100,000 threads the API's list sorted them
    all (139 ms; 4 ms from the index), the page's graph filter sorted a graph's (41 ms).
    The page's order ties on the pk, which its index leaves to a short sort of equal times
    ("RIGHT PART" on SQLite). Both filters at once are left to the planner: PostgreSQL
    rightly sorts the few threads of one status in one graph."""
    from approvals.selectors import thread_list

    # enough rows for PostgreSQL's planner to prefer an index to sorting a read of the table
    graphs, statuses = ["expense", "support", "other"], ["done"] * 8 + ["failed", "waiting"]
    Thread.objects.bulk_create(
        Thread(thread_id=f"t{i}", graph_name=graphs[i % 3], status=statuses[i % 10])
        for i in range(3_000))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Thread._meta.db_table}")
    api = thread_list(status=status, graph=graph).order_by("-created_at", "-pk")[:51]
    page = thread_list(status=status, graph=graph)[:25]
    for qs in (api, page):
        sql, params = qs.query.sql_with_params()
        plan = _plan(sql, params)
        if connection.vendor == "sqlite":
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
        elif qs is api:
            assert "Sort" not in plan, plan
