"""An index for the threads page's search, a substring of a thread's id or title
(`thread_search`): without one, every search read every thread, twice (the page and its
count): 56 ms on SQLite and 99 ms on PostgreSQL at 101,000 threads, growing with the
installation's age.

- PostgreSQL: trigram indexes (the `pg_trgm` extension, shipped with PostgreSQL and trusted
  since PostgreSQL 13, so the database's owner may create it) on `LOWER(title)` and
  `LOWER(thread_id)`. Not on `UPPER(…)`, the expressions of Django's `icontains`: the app
  prepares its statements, and the generic plan of an `icontains` that an index could serve
  read the whole trigram index for a short text (227 ms at 100,000 threads, where reading
  the table took 103 ms). `thread_search` asks these indexes with a statement of its own.
- SQLite: an FTS5 table with the trigram tokenizer, kept by triggers, whose phrase query is
  a case-insensitive substring match (`thread_search` queries it for three characters or
  more). The table holds no copy of the text (`content=` the thread table). A later migration
  that rebuilds the thread table on SQLite (Django's schema editor copies the table, not its
  triggers) drops the triggers: `tests/runtime/test_thread_search.py` catches that.
"""

from typing import Any

from django.db import migrations

FTS = "stepwise_thread_search"
THREAD = "orchestration_thread"

SQLITE_CREATE = (
    f"""CREATE VIRTUAL TABLE "{FTS}" USING fts5(thread_id, title, content='{THREAD}',
        content_rowid='id', tokenize='trigram')""",
    f"""CREATE TRIGGER "{FTS}_insert" AFTER INSERT ON "{THREAD}" BEGIN
        INSERT INTO "{FTS}" (rowid, thread_id, title) VALUES (NEW.id, NEW.thread_id, NEW.title);
    END""",
    f"""CREATE TRIGGER "{FTS}_delete" AFTER DELETE ON "{THREAD}" BEGIN
        INSERT INTO "{FTS}" ("{FTS}", rowid, thread_id, title)
        VALUES ('delete', OLD.id, OLD.thread_id, OLD.title);
    END""",
    # Only when the text changes: a thread's row is saved at every change of its status.
    f"""CREATE TRIGGER "{FTS}_update" AFTER UPDATE OF thread_id, title ON "{THREAD}"
    WHEN OLD.thread_id IS NOT NEW.thread_id OR OLD.title IS NOT NEW.title BEGIN
        INSERT INTO "{FTS}" ("{FTS}", rowid, thread_id, title)
        VALUES ('delete', OLD.id, OLD.thread_id, OLD.title);
        INSERT INTO "{FTS}" (rowid, thread_id, title) VALUES (NEW.id, NEW.thread_id, NEW.title);
    END""",
    f"""INSERT INTO "{FTS}" ("{FTS}") VALUES ('rebuild')""",
)
SQLITE_DROP = (
    *(f'DROP TRIGGER IF EXISTS "{FTS}_{event}"' for event in ("insert", "delete", "update")),
    f'DROP TABLE IF EXISTS "{FTS}"',
)

PG_CREATE = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    f'CREATE INDEX "thread_search_title" ON "{THREAD}" USING gin (LOWER("title") gin_trgm_ops)',
    f'CREATE INDEX "thread_search_id" ON "{THREAD}" USING gin (LOWER("thread_id") gin_trgm_ops)',
)
# The extension stays: another table may use it.
PG_DROP = ('DROP INDEX IF EXISTS "thread_search_title"', 'DROP INDEX IF EXISTS "thread_search_id"')


def _run(schema_editor: Any, by_vendor: dict[str, tuple[str, ...]]) -> None:
    for statement in by_vendor.get(schema_editor.connection.vendor, ()):
        schema_editor.execute(statement)


def create(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, {"sqlite": SQLITE_CREATE, "postgresql": PG_CREATE})


def drop(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, {"sqlite": SQLITE_DROP, "postgresql": PG_DROP})


class Migration(migrations.Migration):

    dependencies = [("orchestration", "0015_task_rows_running_index")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
