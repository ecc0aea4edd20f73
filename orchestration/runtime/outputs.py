"""What a run's nodes stream while they run (`get_stream_writer()`), kept as `RunOutput` rows
and announced to the thread's page through the event path. Each chunk is stored as it
arrives; the page is told at most every `NOTIFY_SECONDS` (a token per event would flood the
audit trail), and once more when the pass ends."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from django.db.models import Max

from orchestration.runtime.events import publish
from orchestration.runtime.models import Run, RunOutput

NOTIFY_SECONDS = 0.25


def jsonable(chunk: Any) -> Any:
    """The chunk as JSON (anything JSON cannot hold becomes its text)."""
    try:
        return json.loads(json.dumps(chunk, default=str))
    except (TypeError, ValueError):
        return str(chunk)


class OutputRecorder:
    def __init__(self, run: Run) -> None:
        self.run = run
        # read at the first chunk: most passes stream nothing, and then cost no query
        self.seq: int | None = None
        self.unannounced = 0
        self.announced_at = 0.0
        self._lock = threading.Lock()  # parallel nodes write at once; seq stays one sequence

    def add(self, namespace: tuple[str, ...], chunk: Any) -> None:
        with self._lock:
            if self.seq is None:
                last = RunOutput.objects.filter(run=self.run).aggregate(m=Max("seq"))["m"]
                self.seq = 0 if last is None else last + 1
            RunOutput.objects.create(
                run=self.run, seq=self.seq, namespace="|".join(namespace), data=jsonable(chunk)
            )
            self.seq += 1
            self.unannounced += 1
            due = time.monotonic() - self.announced_at >= NOTIFY_SECONDS
        if due:
            self.announce()

    def announce(self) -> None:
        with self._lock:
            if not self.unannounced:
                return
            count, self.unannounced = self.unannounced, 0
            self.announced_at = time.monotonic()
        publish("run_output", run=self.run, data={"chunks": count, "seq": self.seq})
