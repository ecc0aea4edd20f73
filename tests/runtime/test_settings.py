"""Settings from the environment: production values pass `check --deploy`; SQLite is private."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTEST_VERSION", "DEBUG", "DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "stepwise.example.com",
        "SQLITE_PATH": str(tmp_path / "prod.sqlite3"),
    })
    return env


def test_production_settings_pass_check_deploy_without_warnings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=production_env(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_secret_key(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


@pytest.mark.django_db
def test_sqlite_database_file_is_private() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite profile only")
    connection.ensure_connection()
    mode = stat.S_IMODE(os.stat(connection.settings_dict["NAME"]).st_mode)
    assert mode == 0o600


@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite profile only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


SHOW_PROXY_HEADER = "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"


@pytest.mark.parametrize(("configured", "expected"), [
    (None, "None"), ("0", "None"), ("1", "('HTTP_X_FORWARDED_PROTO', 'https')"),
])
def test_forwarded_proto_is_trusted_only_when_configured(tmp_path: Path, configured, expected):
    env = production_env(tmp_path)
    if configured is not None:
        env["TRUST_X_FORWARDED_PROTO"] = configured
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {SHOW_PROXY_HEADER}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.stdout.strip() == expected, result.stderr


SHOW_REQUEST_THREADS = "from django.conf import settings; print(settings.STEPWISE_REQUEST_THREADS)"


@pytest.mark.parametrize(("database", "pool", "expected"), [
    (None, None, "2"),  # SQLite: two threads, so a transaction holds the write lock briefly
    ("postgres://postgres@127.0.0.1:5432/x", None, "8"),  # as many as the pool's connections
    ("postgres://postgres@127.0.0.1:5432/x", "5", "5"),
    ("postgres://postgres@127.0.0.1:5432/x", "0", "0"),  # no pool (PgBouncer): no limit
])
def test_a_server_runs_no_more_requests_at_once_than_it_has_connections(
    tmp_path: Path, database, pool, expected
):
    """A request beyond the pool's size waited for a connection and failed after the pool's
    timeout (HTTP 500 at 100 reviewers); the limit makes it wait in the event loop instead."""
    env = production_env(tmp_path)
    if database:
        env["DATABASE_URL"] = database
    env.pop("STEPWISE_DB_POOL_MAX", None)
    if pool is not None:
        env["STEPWISE_DB_POOL_MAX"] = pool
    env.pop("STEPWISE_REQUEST_THREADS", None)
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {SHOW_REQUEST_THREADS}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.stdout.strip() == expected, result.stderr
