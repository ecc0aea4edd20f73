"""STEPWISE_DB_PREPARED: Django's statements bound on the server and prepared per pooled
connection (config/settings.py), still right on a connection the pool replaced."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from django.db import connection
from runtime_helpers import ROOT, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = textwrap.dedent("""
    import django
    django.setup()
    from django.db import connection
    from orchestration.runtime.models import Run, Thread
    from orchestration.runtime.runs import start_thread

    def names():
        return sorted(Thread.objects.filter(title__startswith="prep").values_list("title",
                                                                                   flat=True))

    assert connection.settings_dict["OPTIONS"]["server_side_binding"] is True
    for i in range(4):  # the same statement, prepared from its second run
        start_thread("steps", {"log": "", "gate": ""}, user=None, title=f"prep {i}")
        assert names() == [f"prep {n}" for n in range(i + 1)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        prepared = cursor.fetchone()[0]
    assert prepared > 0, "nothing was prepared"
    # the server ends this session (a restart, a terminated backend): the pool hands out a
    # new connection, whose statements are prepared afresh, and every query stays right
    import psycopg
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
""") + textwrap.dedent("""
    from django.db.utils import OperationalError
    try:
        names()
    except OperationalError:
        pass  # the dead connection's last query, before the pool's check replaces it
    connection.close()
    for _ in range(3):
        assert names() == [f"prep {n}" for n in range(4)]
        assert Run.objects.filter(thread__title__startswith="prep").count() == 4
    print("ok")
""")


def _run_with_prepared_statements(script: str) -> None:
    """`script` in a process of its own with prepared statements on and a pool of two; it
    prints "ok" last when every check in it held."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    env = subprocess_env()
    env.update({"STEPWISE_DB_PREPARED": "1", "STEPWISE_DB_POOL_MAX": "2"})
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def test_prepared_statements_stay_right_after_the_connection_is_replaced() -> None:
    _run_with_prepared_statements(SCRIPT)


ROLLBACK_SCRIPT = textwrap.dedent("""
    import django
    django.setup()
    from django.db import IntegrityError, connection, transaction
    from config.dbpool import KeepPreparedConnection
    from orchestration.runtime.models import Thread

    def titles():
        return sorted(Thread.objects.filter(title__startswith="keep").values_list("title",
                                                                                  flat=True))

    def prepared():
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM pg_prepared_statements")
            return {row[0] for row in cursor.fetchall()}

    Thread.objects.create(thread_id="keep-1", title="keep 1")
    for _ in range(3):  # prepared from its second run
        assert titles() == ["keep 1"]
    assert isinstance(connection.connection, KeepPreparedConnection)
    before = prepared()
    assert before, "nothing was prepared"
    try:
        with transaction.atomic():
            Thread.objects.create(thread_id="keep-2", title="keep 2")
            try:
                with transaction.atomic():  # ROLLBACK TO SAVEPOINT
                    Thread.objects.create(thread_id="keep-1", title="keep dup")
            except IntegrityError:
                pass
            raise RuntimeError("rolled back")  # ROLLBACK
    except RuntimeError:
        pass
    assert titles() == ["keep 1"]
    assert before <= prepared(), "a rollback dropped the prepared statements"
    print("ok")
""")


def test_prepared_statements_survive_a_rollback_on_pooled_connections() -> None:
    """psycopg deallocates every prepared statement after a ROLLBACK (or ROLLBACK TO SAVEPOINT);
    under load each refused decision rolls back, and the statements never lived long enough
    to pay. The pool's connections keep them (config.dbpool.KeepPreparedConnection), and
    every query stays right."""
    _run_with_prepared_statements(ROLLBACK_SCRIPT)
