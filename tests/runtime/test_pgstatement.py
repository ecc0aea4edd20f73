"""`pgstatement`: a fixed statement sent straight to libpq behaves on Django's connection as
the same statement through Django's cursor: inside `atomic` it joins (or opens) the block's
transaction, its text results are what the cursor returns, it is logged as the cursor logs."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from orchestration.runtime import pgstatement
from orchestration.runtime.models import Thread

pytestmark = pytest.mark.django_db(transaction=True)

INSERT = (
    "INSERT INTO orchestration_thread (thread_id, graph_name, title, status, created_at, "
    "updated_at, head_checkpoint_id) VALUES (%(thread_id)s, 'g', %(title)s, 'new', %(now)s, "
    "%(now)s, '') RETURNING id"
)
TYPES = {"thread_id": "text", "title": "text", "now": "timestamptz"}


@pytest.fixture(autouse=True)
def _postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("fixed statements through libpq are PostgreSQL's")


def insert(thread_id: str) -> int:
    row = pgstatement.one(
        connection,
        pgstatement.fixed_statement(INSERT, TYPES),
        {"thread_id": thread_id, "title": f"t {thread_id}", "now": dt.datetime.now(dt.UTC)},
    )
    assert row is not None
    return int(row[0])


def test_first_statement_of_an_atomic_block_is_rolled_back_with_the_block() -> None:
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        insert("rolled-back")
        assert Thread.objects.filter(thread_id="rolled-back").exists()
        raise ZeroDivisionError
    assert not Thread.objects.filter(thread_id="rolled-back").exists()


def test_first_statement_of_an_atomic_block_commits_with_the_block() -> None:
    with transaction.atomic():
        pk = insert("committed")
        Thread.objects.filter(pk=pk).update(title="changed in the same transaction")
    # read on a connection of its own: what was committed
    import psycopg

    params = connection.get_connection_params()
    with psycopg.connect(**params) as other:
        title = other.execute(
            "SELECT title FROM orchestration_thread WHERE id = %s", [pk]
        ).fetchone()
    assert title == ("changed in the same transaction",)


def test_server_errors_come_as_djangos_and_leave_the_connection_usable() -> None:
    insert("twice")
    with pytest.raises(IntegrityError), transaction.atomic():
        insert("twice")
    assert Thread.objects.filter(thread_id="twice").count() == 1


def test_text_results_are_what_djangos_cursor_returns() -> None:
    pk = insert("loaded")
    sql = "SELECT id, title, created_at, '{\"a\": [1]}'::jsonb, '\\x00ff'::bytea, NULL::int8 " \
          "FROM orchestration_thread WHERE id = %(pk)s"
    statement = pgstatement.fixed_statement(sql, {"pk": "int8"}, text_results=True)
    got = pgstatement.one(connection, statement, {"pk": pk})
    with connection.cursor() as cursor:
        cursor.execute(sql, {"pk": pk})
        expected = cursor.fetchone()
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]


def test_statements_are_logged_as_djangos_cursor_logs_them() -> None:
    with CaptureQueriesContext(connection) as queries:
        insert("logged")
    assert [q["sql"] for q in queries] == [INSERT]
