"""The task queues of a Stepwise installation.

Runs and notifications (webhook deliveries, e-mails) are queued apart so that a run never
waits behind a slow receiver or mail server: a worker of `RUNS` executes graph runs only,
a worker of `NOTIFY` sends only. `stepwise_worker` without `--queue-name` takes every queue
(one worker for a demo or a small team); the serving profile runs a worker pool per queue
(Procfile `worker` and `notify`).
"""

from __future__ import annotations

RUNS = "default"  # Django's default queue: runs queued before the split are still taken
NOTIFY = "notify"
ALL = (RUNS, NOTIFY)
