"""The database servers the Django-saver workloads run on: PostgreSQL found or started the way
`bin/test` does it (bin/_common.sh `ensure_postgres`), throwaway bench databases on it, and
Django configured in-process with two aliases (a SQLite file and, when the server is up,
PostgreSQL), both migrated.

Every database this module creates is named `<prefix>_django`, `<prefix>_langgraph` and
`<prefix>_raw` and dropped first, so a run never measures what an earlier run left behind. The
prefix is `stepwise_bench` unless `BENCH_PG_PREFIX` names another (it must start with
`stepwise_`): two benches on one server at once each need their own.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
PG_PREFIX = os.environ.get("BENCH_PG_PREFIX") or "stepwise_bench"
DJANGO_DB = f"{PG_PREFIX}_django"
LANGGRAPH_DB = f"{PG_PREFIX}_langgraph"
RAW_DB = f"{PG_PREFIX}_raw"
PG_ALIAS, SQLITE_ALIAS = "pg", "default"


@dataclass
class Servers:
    """What is available to the Django-saver workloads, and why something is not."""

    workdir: Path
    postgres: bool = False
    django: bool = False
    notes: list[str] = field(default_factory=list)

    def pg_url(self, database: str) -> str:
        return f"{PG_SERVER}/{database}"


def ensure_postgres() -> str | None:
    """None if PostgreSQL answers on 127.0.0.1:5432 (started if installed and down, as
    bin/test does), else why not."""
    script = f'source "{ROOT}/bin/_common.sh" && ensure_postgres'
    try:
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not run bin/_common.sh ensure_postgres: {exc}"
    if done.returncode != 0:
        return (
            "PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started "
            "(bin/_common.sh ensure_postgres); start it (pg_ctlcluster 15 main start) or set "
            "BENCH_PG_URL. The PostgreSQL workloads were skipped."
        )
    return None


def recreate_database(name: str) -> None:
    import psycopg

    if not (name.startswith("stepwise_") and name.startswith(f"{PG_PREFIX}_")):
        raise ValueError(
            f"refusing to drop {name!r}: bench databases are named {PG_PREFIX}_* "
            "(BENCH_PG_PREFIX, which starts with stepwise_)"
        )
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _django_settings(workdir: Path, postgres: bool) -> dict[str, object]:
    databases: dict[str, dict[str, object]] = {
        # The same engine and options as config/settings.py gives the app's SQLite database
        # (our backend: the write gate, WAL checkpoints in the background).
        SQLITE_ALIAS: {
            "ENGINE": "orchestration.runtime.sqlite_backend",
            "NAME": str(workdir / "django.sqlite3"),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
                ),
            },
        },
    }
    if postgres:
        import dj_database_url

        databases[PG_ALIAS] = dj_database_url.parse(f"{PG_SERVER}/{DJANGO_DB}", conn_max_age=None)
    return {
        "DEBUG": False,
        "SECRET_KEY": "bench-only",
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_tasks_db",
            "orchestration.runtime",
        ],
        "DATABASES": databases,
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "TASKS": {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
        "STEPWISE_GRAPHS": {},
        "LOGGING_CONFIG": None,
    }


def prepare(workdir: Path, want_postgres: bool) -> Servers:
    """Find PostgreSQL, make the bench databases and configure Django on them."""
    servers = Servers(workdir)
    if want_postgres:
        why = ensure_postgres()
        if why is None:
            try:
                for name in (DJANGO_DB, LANGGRAPH_DB, RAW_DB):
                    recreate_database(name)
                servers.postgres = True
            except Exception as exc:  # a server we cannot create databases on: say so
                why = f"PostgreSQL is up but creating the bench databases failed: {exc}"
        if why is not None:
            servers.notes.append(why)
    try:
        import django
        from django.conf import settings
        from django.core.management import call_command

        settings.configure(**_django_settings(workdir, servers.postgres))
        django.setup()
        call_command("migrate", database=SQLITE_ALIAS, verbosity=0)
        if servers.postgres:
            call_command("migrate", database=PG_ALIAS, verbosity=0)
        servers.django = True
    except Exception as exc:
        servers.notes.append(f"Django could not be configured ({exc}): Django workloads skipped")
    return servers


def pg_relation_bytes(url: str, tables: tuple[str, ...]) -> int:
    """Heap + indexes + TOAST of `tables`, from a separate connection."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.relname = ANY(%s) AND c.relkind = 'r'",
            (list(tables),),
        ).fetchone()
    return int(row[0]) if row else 0
