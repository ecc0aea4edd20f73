"""On SQLite, the thread's head follows its newest root checkpoint by a trigger: each row
inserted into `orchestration_checkpoint` with an empty namespace sets its thread's
`head_checkpoint_id`, in the inserting statement.

Why: the Django saver's put on SQLite is then ONE statement in autocommit (an
`INSERT` that also checks the run's lease), its own transaction, instead of
BEGIN IMMEDIATE, the fence, the head update, the insert and COMMIT (`sqlite_backend/put.py`).
Every reader of `head_checkpoint_id` (approvals, the tree view, retention's export, the admin)
reads the same column as before. A subgraph's checkpoint (namespace not empty) never moves
the head, as before.

PostgreSQL is left alone: its put is already one statement that moves the head itself. A
later migration that rebuilds this table on SQLite (Django's schema editor copies the table,
not its triggers) would drop the trigger: `test_checkpoint_insert_moves_the_head_on_sqlite`
catches that, and the saver's slower path (a new thread) still sets the head by itself.
"""

from django.db import migrations

TRIGGER = "orchestration_checkpoint_moves_head"
CREATE = """CREATE TRIGGER IF NOT EXISTS "orchestration_checkpoint_moves_head"
AFTER INSERT ON "orchestration_checkpoint" FOR EACH ROW WHEN NEW."checkpoint_ns" = ''
BEGIN
    UPDATE "orchestration_thread" SET "head_checkpoint_id" = NEW."checkpoint_id"
    WHERE "id" = NEW."thread_id";
END"""
DROP = f'DROP TRIGGER IF EXISTS "{TRIGGER}"'


def create_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(CREATE)
        _forget(schema_editor)


def drop_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(DROP)
        _forget(schema_editor)


def _forget(schema_editor) -> None:
    # The migrating connection may have remembered whether the trigger exists (the saver
    # asks once per connection): it asks again.
    raw = schema_editor.connection.connection
    if getattr(raw, "head_trigger", None) is not None:
        raw.head_trigger = None


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0008_checkpoint_rowid")]

    operations = [migrations.RunPython(create_trigger, drop_trigger, elidable=False)]
