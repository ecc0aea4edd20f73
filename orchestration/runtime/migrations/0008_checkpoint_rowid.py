"""On SQLite, `orchestration_checkpoint` without AUTOINCREMENT: a new row takes the largest
rowid + 1 as its pk, as before, without updating `sqlite_sequence` on every insert. That row
was one of the ~5 B-tree pages each superstep wrote to the WAL (the raw floor writes 2).

What AUTOINCREMENT added: a pk is never reused, even after the row with the largest pk was
deleted. Nothing relies on it: every reference to a checkpoint row is a foreign key that the
delete clears or cascades, and the saver's remembered parent pks are checked against the
parent's checkpoint id when used (`checkpoint_sql`).

SQLite cannot drop AUTOINCREMENT in place: the table is rebuilt (as Django's own schema
editor does, its rows copied with their pks, its indexes made again). PostgreSQL is left
alone (an identity column has no such cost). Django's model state does not change: a later
migration that rebuilds this table on SQLite brings AUTOINCREMENT back, which
`test_checkpoint_table_has_no_autoincrement_on_sqlite` would catch.
"""

from django.db import migrations

TABLE = "orchestration_checkpoint"
WITH = '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT'
WITHOUT = '"id" integer NOT NULL PRIMARY KEY'


def _rebuild(schema_editor, old: str, new: str) -> None:
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
    if old not in table_sql:
        return  # already in the wanted form (a database made by hand, a re-run)
    others = [sql for kind, sql in found if kind != "table"]  # indexes (and any trigger)
    temporary = f"new__{TABLE}"
    schema_editor.execute(
        table_sql.replace(old, new, 1).replace(f'"{TABLE}"', f'"{temporary}"', 1)
    )
    # Constant table names (this module's), no input: nothing to inject.
    schema_editor.execute(f'INSERT INTO "{temporary}" SELECT * FROM "{TABLE}"')  # noqa: S608
    schema_editor.execute(f'DROP TABLE "{TABLE}"')
    schema_editor.execute(f'ALTER TABLE "{temporary}" RENAME TO "{TABLE}"')
    for sql in others:
        schema_editor.execute(sql)
    if new == WITHOUT:
        schema_editor.execute("DELETE FROM sqlite_sequence WHERE name = %s", params=[TABLE])
    # With AUTOINCREMENT back, SQLite's sequence starts from the largest pk on its own.


def drop_autoincrement(apps, schema_editor) -> None:
    _rebuild(schema_editor, WITH, WITHOUT)


def restore_autoincrement(apps, schema_editor) -> None:
    _rebuild(schema_editor, WITHOUT, WITH)


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0007_checkpoint_vals")]

    operations = [migrations.RunPython(drop_autoincrement, restore_autoincrement, elidable=False)]
