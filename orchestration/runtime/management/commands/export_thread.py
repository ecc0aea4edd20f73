"""`manage.py export_thread THREAD_ID [-o FILE]`: the thread, its runs, history, reviews,
decisions and every checkpoint's state as JSON (stdout by default). A file it writes is
readable by its owner only (0600), like the SQLite database: it holds the thread's full state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orchestration.runtime.models import Thread
from orchestration.runtime.retention import dumps, export_thread


class Command(BaseCommand):
    help = "Export one thread as JSON (for instance before prune_threads removes its state)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("thread_id")
        parser.add_argument("-o", "--output", type=Path, default=None,
                            help="write to this file instead of stdout")

    def handle(self, *args: Any, thread_id: str, output: Path | None, **options: Any) -> None:
        thread = Thread.objects.filter(thread_id=thread_id).first()
        if thread is None:
            raise CommandError(
                f"no thread {thread_id!r}; thread ids are listed on the Threads page and in "
                "the admin"
            )
        text = dumps(export_thread(thread))
        if output is None:
            self.stdout.write(text)
        else:
            write_private(output, text)
            self.stderr.write(f"exported thread {thread_id} to {output}")


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 (an export holds a thread's full state, personal
    data and all). A file that exists already is made 0600 before anything is written to it:
    a world-readable file from an older export does not stay so."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
