from __future__ import annotations

import os
import stat
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.db.backends.signals import connection_created

from orchestration.runtime.checks import check_graphs, check_stall_policies


class OrchestrationConfig(AppConfig):
    name = "orchestration.runtime"
    label = "orchestration"  # tables, migrations and permissions keep their names
    verbose_name = "Orchestration"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(check_graphs, "stepwise")
        checks.register(check_stall_policies, "stepwise")
        connection_created.connect(restrict_sqlite_file, dispatch_uid="stepwise-sqlite-0600")
        _wake_workers_on_enqueue()


def _wake_workers_on_enqueue() -> None:
    from django.db.models.signals import post_save
    from django_tasks_db.models import DBTaskResult

    from orchestration.runtime.wakeup import notify_task_saved

    post_save.connect(notify_task_saved, sender=DBTaskResult, dispatch_uid="stepwise-wakeup")


def restrict_sqlite_file(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Keep SQLite database files private (0600): they hold every thread's state.

    SQLite creates the file with the process umask; tightening it when the first connection
    opens covers the app database and test databases alike, and SQLite copies the mode to
    its -wal and -shm files (tightened here too in case they already existed).
    """
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:") or not os.path.exists(name):
        return
    for path in (name, f"{name}-wal", f"{name}-shm"):
        if os.path.exists(path) and stat.S_IMODE(os.stat(path).st_mode) != 0o600:
            os.chmod(path, 0o600)
