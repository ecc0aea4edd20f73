"""Append-only audit rows, enforced by the database itself (SQLite and PostgreSQL).

The audit trail is `orchestration.Event` and `approvals.Decision`. `Decision.save()` refuses
changes in Python, but a queryset `.update()`/`.delete()` or raw SQL goes around Python, so
migrations install triggers on each audit table (`install_append_only`):

- UPDATE is refused, except that a *set-once* column may be filled while it is still NULL
  (`Decision.resumed_run`: a decision is written naming the run it queued; one whose run is
  only known later, a re-answer's, has it filled in then).
- DELETE is refused, and TRUNCATE too on PostgreSQL.
- Both raise an integrity error (SQLite `RAISE(ABORT)`, PostgreSQL SQLSTATE 23000), which
  Django turns into `django.db.IntegrityError`.

The foreign keys on audit rows are PROTECT, so nothing cascades them away: deleting a thread,
run, review or user that audit rows name is refused (`Thread.delete()` raises
`AuditTrailProtected`; the admin lists the protected rows). A thread with history is
cancelled, never deleted; a person who acted is deactivated, not deleted.

`audit_unlocked()` is the one way past the triggers, for one transaction: `manage.py flush`
(which test suites use between transactional tests) runs inside it. It guards against
mistakes in code; a database owner can still drop the triggers.

On SQLite the update trigger lists the table's columns when installed: a migration that adds
a column, or remakes the table (SQLite drops a table's triggers with it), must call
`install_append_only` again afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

# SQLite has no session variables: a row in this table, inserted and deleted inside one
# transaction by `audit_unlocked`, is the flag (other connections never see it uncommitted).
SQLITE_FLAG_TABLE = "stepwise_audit_unlock"
PG_SETTING = "stepwise.audit_unlocked"
PG_FUNCTION = "stepwise_append_only"

_PG_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    col text;
BEGIN
    IF current_setting('{PG_SETTING}', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        old_row := to_jsonb(OLD);
        new_row := to_jsonb(NEW);
        -- set-once columns (the trigger's arguments) may be filled while still NULL
        IF TG_NARGS > 0 THEN
            FOREACH col IN ARRAY TG_ARGV LOOP
                IF old_row -> col = 'null'::jsonb THEN
                    old_row := old_row - col;
                    new_row := new_row - col;
                END IF;
            END LOOP;
        END IF;
        IF old_row = new_row THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% rows are append-only (the audit trail): % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation',
              HINT = 'Record a new row instead; a thread with history is cancelled, not deleted.';
END;
$$;
"""


def _refusal(table: str, op: str) -> str:
    return f"{table} rows are append-only (the audit trail): {op} refused"


def _sqlite_sql(table: str, columns: Sequence[str], set_once: Sequence[str]) -> list[str]:
    unlocked = f"EXISTS (SELECT 1 FROM {SQLITE_FLAG_TABLE})"  # noqa: S608 - constant names
    same = [
        f'(NEW."{c}" IS OLD."{c}" OR OLD."{c}" IS NULL)' if c in set_once
        else f'NEW."{c}" IS OLD."{c}"'
        for c in columns
    ]
    return [
        f"CREATE TABLE IF NOT EXISTS {SQLITE_FLAG_TABLE} (unlocked integer NOT NULL)",
        f'CREATE TRIGGER "{table}_append_only_update" BEFORE UPDATE ON "{table}" '
        f"WHEN NOT {unlocked} AND NOT ({' AND '.join(same)}) "
        f"BEGIN SELECT RAISE(ABORT, '{_refusal(table, 'UPDATE')}'); END",
        f'CREATE TRIGGER "{table}_append_only_delete" BEFORE DELETE ON "{table}" '
        f"WHEN NOT {unlocked} "
        f"BEGIN SELECT RAISE(ABORT, '{_refusal(table, 'DELETE')}'); END",
    ]


def _postgresql_sql(table: str, set_once: Sequence[str]) -> list[str]:
    args = ", ".join(f"'{c}'" for c in set_once)
    return [
        _PG_FUNCTION_SQL,
        f'CREATE TRIGGER "{table}_append_only" BEFORE UPDATE OR DELETE ON "{table}" '
        f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}({args})",
        f'CREATE TRIGGER "{table}_append_only_truncate" BEFORE TRUNCATE ON "{table}" '
        f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()",
    ]


def install_append_only(schema_editor: Any, model: Any, set_once: Sequence[str] = ()) -> None:
    """Install the triggers on `model`'s table (for a migration's RunPython; `model` may be
    a historical model). `set_once`: column names that may go from NULL to a value once."""
    table = model._meta.db_table
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        columns = [f.column for f in model._meta.concrete_fields]
        statements = _sqlite_sql(table, columns, set_once)
    elif vendor == "postgresql":
        statements = _postgresql_sql(table, set_once)
    else:
        raise NotImplementedError(
            f"append-only triggers for {vendor} are not written: Stepwise supports SQLite and "
            "PostgreSQL"
        )
    uninstall_append_only(schema_editor, model)
    for sql in statements:
        schema_editor.execute(sql, params=None)


def uninstall_append_only(schema_editor: Any, model: Any) -> None:
    table = model._meta.db_table
    if schema_editor.connection.vendor == "sqlite":
        names = [f"{table}_append_only_update", f"{table}_append_only_delete"]
        for name in names:
            schema_editor.execute(f'DROP TRIGGER IF EXISTS "{name}"', params=None)
    elif schema_editor.connection.vendor == "postgresql":
        for name in (f"{table}_append_only", f"{table}_append_only_truncate"):
            schema_editor.execute(f'DROP TRIGGER IF EXISTS "{name}" ON "{table}"', params=None)


@contextmanager
def audit_unlocked(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Let the statements inside delete or change audit rows, in one transaction (savepoint
    if one is open). Only `manage.py flush` uses it; the lock is back when the block ends,
    and a rollback undoes the unlock with everything else."""
    connection = connections[using]
    with transaction.atomic(using=using):
        _set_unlocked(connection, True)
        yield
        _set_unlocked(connection, False)


def _set_unlocked(connection: Any, on: bool) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config(%s, %s, true)", [PG_SETTING, "on" if on else "off"])
        elif connection.vendor == "sqlite":
            if SQLITE_FLAG_TABLE not in connection.introspection.table_names(cursor):
                return  # not migrated yet: there are no triggers to pass either
            if on:
                cursor.execute(f"INSERT INTO {SQLITE_FLAG_TABLE} (unlocked) VALUES (1)")  # noqa: S608
            else:
                cursor.execute(f"DELETE FROM {SQLITE_FLAG_TABLE}")  # noqa: S608
