"""On SQLite, `orchestration_checkpoint` without the `JSON_VALID` CHECK constraints that
Django's JSONField puts on `next`, `versions`, `extra` and `written_by`: SQLite parsed all four
JSON texts again on every insert (~8k instructions per superstep's put, a few percent of it).

Why nothing is lost: the saver writes these columns only through `checkpoint_sql._json`, whose
encoder refuses what is not JSON (NaN and infinities raise before any write, strings are
escaped by the C encoder) and whose values are the saver's own lists and dicts of strings and
the JSON-safe copy of `metadata.extra` (`storage.encode._json_safe`). Validation happens where
the values are encoded, once, instead of again in SQLite. PostgreSQL is left alone: its
`jsonb` columns parse their input by type, there is no CHECK to drop.

SQLite cannot drop a CHECK in place: the table is rebuilt as migration 0008 does it (rows
copied with their pks, then its indexes and the head trigger of migration 0009 made again;
SQLite drops a table's triggers with it). Django's model state does not change: a later
migration that rebuilds this table on SQLite brings the CHECKs back (slower, not wrong), which
`test_checkpoint_table_has_no_json_checks_on_sqlite` would catch.
"""

from django.db import migrations

TABLE = "orchestration_checkpoint"
COLUMNS = ("next", "versions", "extra", "written_by")


def _declared(column: str) -> str:
    return f'"{column}" text NOT NULL'


def _checked(column: str) -> str:
    return f'{_declared(column)} CHECK ((JSON_VALID("{column}") OR "{column}" IS NULL))'


def _without_checks(table_sql: str) -> str:
    for column in COLUMNS:
        table_sql = table_sql.replace(_checked(column), _declared(column), 1)
    return table_sql


def _with_checks(table_sql: str) -> str:
    for column in COLUMNS:
        if _checked(column) not in table_sql:
            table_sql = table_sql.replace(_declared(column), _checked(column), 1)
    return table_sql


def _rebuild(schema_editor, change) -> None:
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = %s AND sql IS NOT NULL",
            [TABLE],
        )
        found = cursor.fetchall()
    (table_sql,) = [sql for kind, sql in found if kind == "table"]
    new_sql = change(table_sql)
    if new_sql == table_sql:
        return  # already in the wanted form (a database made by hand, a re-run)
    others = [sql for kind, sql in found if kind != "table"]  # indexes and the head trigger
    temporary = f"new__{TABLE}"
    schema_editor.execute(new_sql.replace(f'"{TABLE}"', f'"{temporary}"', 1))
    # Constant table names (this module's), no input: nothing to inject. Same columns in
    # the same order: only the CHECKs differ.
    schema_editor.execute(f'INSERT INTO "{temporary}" SELECT * FROM "{TABLE}"')  # noqa: S608
    schema_editor.execute(f'DROP TABLE "{TABLE}"')
    schema_editor.execute(f'ALTER TABLE "{temporary}" RENAME TO "{TABLE}"')
    for sql in others:
        schema_editor.execute(sql)
    # The migrating connection may have remembered whether the head trigger exists (the
    # saver asks once per connection): it was dropped and made again, let it ask again.
    raw = connection.connection
    if getattr(raw, "head_trigger", None) is not None:
        raw.head_trigger = None


def drop_checks(apps, schema_editor) -> None:
    _rebuild(schema_editor, _without_checks)


def restore_checks(apps, schema_editor) -> None:
    _rebuild(schema_editor, _with_checks)


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0010_fewer_index_entries")]

    operations = [migrations.RunPython(drop_checks, restore_checks, elidable=False)]
