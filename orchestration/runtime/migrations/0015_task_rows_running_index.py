"""An index of the task rows being run, on django-tasks-db's table: the sweeper reads them on
every pass (`lost_tasks.lost_rows`, `leases._runs_with_live_tasks`), and the library indexes
only the ready ones, so each pass read every task row ever finished (300,000 rows: 66 ms a
pass, every few seconds). Partial: it holds the few rows in a worker's hands, whatever the
table's size."""

from typing import Any

from django.db import migrations

INDEX = "stepwise_task_running"


def _table(apps: Any) -> str:
    return str(apps.get_model("django_tasks_database", "DBTaskResult")._meta.db_table)


def create(apps: Any, schema_editor: Any) -> None:
    quote = schema_editor.quote_name
    schema_editor.execute(
        f"CREATE INDEX {quote(INDEX)} ON {quote(_table(apps))} ({quote('started_at')}) "
        "WHERE status = 'RUNNING'"
    )


def drop(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(INDEX)}")


class Migration(migrations.Migration):

    dependencies = [
        ("orchestration", "0014_thread_list_orders"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [migrations.RunPython(create, drop)]
