"""On SQLite, `orchestration_checkpoint.parent_id` without its index and without its
foreign-key constraint; everywhere, the `parent` foreign key no longer cascades in Python.

Why: every put inserts an entry into the `parent_id` index, one more B-tree page written to the
WAL per superstep (~4.5 pages -> ~3.5 per put; the raw floor writes 2.3). No reader needs
the index: they follow `parent_id` to the parent's primary key (the history's join, the API,
the tree), never from a parent to its children by id alone (the admin's list of children
asks within the thread, which the unique index serves).

What the index was for is deleting: a deleted checkpoint's children had to be found, by
SQLite's foreign-key check (a scan of the table per deleted row without the index) and by
Django's cascade (one query per batch of rows). Checkpoints are deleted a thread at a time
and never one by one (`delete_thread`, and a thread's own deletion, which deletes its
checkpoints by their thread): a parent and its children go together, so nothing needs
finding. Hence `on_delete=DO_NOTHING` in the model (state only: no database change), and on
SQLite no constraint to check.

PostgreSQL keeps its index and its (deferred) constraint: its deletes of a thread's rows are
checked at commit, when the children are gone too.

SQLite cannot drop a column's REFERENCES in place: the table is rebuilt as migrations 0008
and 0011 do it (rows copied with their pks, then the other indexes and 0009's head trigger
made again). Django's model state keeps the index: a later migration that rebuilds this table
on SQLite brings it back with the constraint (slower, not wrong), which
`test_checkpoint_table_has_no_parent_index_on_sqlite` would catch.
"""

from django.db import migrations, models

TABLE = "orchestration_checkpoint"
# The index Django made for the foreign key (0001's name, its hash of table and column).
INDEX = "orchestration_checkpoint_parent_id_5d0cb20f"
UNCHECKED = '"parent_id" bigint NULL'
CHECKED = f'{UNCHECKED} REFERENCES "{TABLE}" ("id") DEFERRABLE INITIALLY DEFERRED'
CREATE_INDEX = f'CREATE INDEX "{INDEX}" ON "{TABLE}" ("parent_id")'


def _unchecked(table_sql: str) -> str:
    return table_sql.replace(CHECKED, UNCHECKED, 1)


def _checked(table_sql: str) -> str:
    if CHECKED in table_sql:
        return table_sql
    return table_sql.replace(UNCHECKED, CHECKED, 1)


def _rebuild(schema_editor, change, indexed: bool) -> None:
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = %s AND sql IS NOT NULL",
            [TABLE],
        )
        found = cursor.fetchall()
    (table_sql,) = [sql for kind, _, sql in found if kind == "table"]
    new_sql = change(table_sql)
    if new_sql == table_sql and any(name == INDEX for _, name, _ in found) == indexed:
        return  # already in the wanted form (a database made by hand, a re-run)
    # Indexes and the head trigger, made again after the copy; the parent's index as wanted.
    others = [sql for kind, name, sql in found if kind != "table" and name != INDEX]
    if indexed:
        others.append(CREATE_INDEX)
    temporary = f"new__{TABLE}"
    schema_editor.execute(new_sql.replace(f'"{TABLE}"', f'"{temporary}"', 1))
    # Constant table names (this module's), no input: nothing to inject. Same columns in
    # the same order: only the parent's REFERENCES differs.
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


def drop_parent_index(apps, schema_editor) -> None:
    _rebuild(schema_editor, _unchecked, indexed=False)


def restore_parent_index(apps, schema_editor) -> None:
    _rebuild(schema_editor, _checked, indexed=True)


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0011_sqlite_checkpoint_json_unchecked")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="checkpoint",
                    name="parent",
                    field=models.ForeignKey(
                        blank=True, null=True, on_delete=models.DO_NOTHING,
                        related_name="children", to="orchestration.checkpoint",
                    ),
                ),
            ],
        ),
        migrations.RunPython(drop_parent_index, restore_parent_index, elidable=False),
    ]
