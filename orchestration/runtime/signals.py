"""Signals the worker sends when a run changes state (receivers: the approvals app, ops tools).

Each is sent inside the transaction that records the new run status, so a receiver's rows
(e.g. one ReviewRequest per interrupt) commit with that status or not at all.

- `run_paused(sender=Run, run, interrupts: list[Interrupt], thread_current: bool)`: the run
  stopped at interrupts. `thread_current`: `run.thread` holds its row's values as this
  transaction left them (the worker just wrote every field that changes, under the row's
  lock): a receiver need not read it again.
- `run_finished(sender=Run, run)`: the graph reached END.
- `run_failed(sender=Run, run)`: a node raised; `run.error` / `run.traceback` say why.
- `run_stalled(sender=Run, run, needs_ops: bool)`: the run's worker stopped renewing its
  lease and a person should know: `needs_ops=False` when it is marked stalled for ops to
  decide (`--mark-only`, a graph that opted out of automatic resumes), `True` when the
  sweeper's stall policy gave up and failed it (`runtime/healing.py`). A stall the policy
  resumes on its own sends nothing.
"""

from __future__ import annotations

from django.dispatch import Signal

run_paused = Signal()
run_finished = Signal()
run_failed = Signal()
run_stalled = Signal()
