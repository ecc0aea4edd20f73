"""Real `manage.py db_worker` processes on the test database: crashes, races, lost leases.

Leases are 1 s here (STEPWISE_LEASE_SECONDS), workers poll every 0.1 s.
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time
from collections import Counter
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from runtime_helpers import LEASE_SECONDS, log_lines, wait_for, wait_for_status

from orchestration import Command
from orchestration.runtime.models import Checkpoint, Event, Run
from orchestration.runtime.runs import resume_thread, start_thread
from orchestration.runtime.tasks import execute_run

pytestmark = pytest.mark.django_db(transaction=True)


def status_of(run: Run) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run.pk)


def lease_expired(run: Run) -> bool:
    run.refresh_from_db()
    return run.lease_expires_at is not None and run.lease_expires_at < timezone.now()


def start_steps(tmp_path: Path) -> tuple[Run, Path, Path]:
    log, gate = tmp_path / "nodes.log", tmp_path / "gate"
    run = start_thread("steps", {"log": str(log), "gate": str(gate)}, user=None)
    return run, log, gate


@pytest.fixture
def killed_run(start_worker: Any, tmp_path: Path) -> dict[str, Any]:
    """A run whose worker was SIGKILLed inside `slow`, after `first` was checkpointed, and whose
    lease has since expired."""
    worker = start_worker()
    run, log, gate = start_steps(tmp_path)
    wait_for(lambda: "slow:start" in log_lines(log), what="slow to start", workers=[worker])
    worker.kill()
    wait_for(lambda: lease_expired(run), timeout=5, what="lease expiry")
    return {"run": run, "log": log, "gate": gate}


def test_run_of_a_killed_worker_becomes_stalled(killed_run: dict[str, Any]) -> None:
    run = killed_run["run"]
    assert status_of(run) == Run.Status.RUNNING  # nobody noticed yet
    call_command("resume_stalled", reason="worker killed", stdout=StringIO())
    assert status_of(run) == Run.Status.QUEUED  # stalled, then queued again: no worker yet
    stalled = Event.objects.get(run=run, kind="run_stalled")
    assert stalled.reason == "worker killed"


def test_mark_only_marks_the_run_stalled_and_leaves_it_for_ops(
    killed_run: dict[str, Any],
) -> None:
    run = killed_run["run"]
    out = StringIO()
    call_command("resume_stalled", "--mark-only", stdout=out)
    assert status_of(run) == Run.Status.STALLED
    assert "stalled run" in out.getvalue()
    assert Event.objects.filter(run=run, kind="run_stalled").count() == 1
    assert not Event.objects.filter(run=run, kind="run_requeued").exists()


def test_resume_stalled_dry_run_changes_nothing(killed_run: dict[str, Any]) -> None:
    call_command("resume_stalled", "--dry-run", stdout=StringIO())
    assert status_of(killed_run["run"]) == Run.Status.RUNNING


def test_stalled_run_is_resumed_by_another_worker_without_redoing_finished_supersteps(
    killed_run: dict[str, Any], start_worker: Any,
) -> None:
    run, log = killed_run["run"], killed_run["log"]
    call_command("resume_stalled", stdout=StringIO())
    killed_run["gate"].touch()
    second = start_worker()
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[second])
    assert Counter(log_lines(log)) == {"first": 1, "slow:start": 2, "slow:end": 1, "last": 1}
    run.refresh_from_db()
    assert run.attempts == 2
    assert str(second.pid) in run.worker


def test_a_worker_killed_inside_a_subgraph_is_resumed_in_that_subgraphs_own_chain(
    start_worker: Any, tmp_path: Path,
) -> None:
    """SIGKILL while a subgraph's node runs: the resumed run goes on from the subgraph's last
    checkpoint (its finished nodes do not run again), and the thread page's subgraph rows
    (read through their own index, `selectors.subgraph_rows`) are one chain, each step once.
    Found by using the app: a 120-step subgraph killed at its 49th checkpoint."""
    from approvals.selectors import subgraph_groups

    worker = start_worker()
    log, gate = tmp_path / "nodes.log", tmp_path / "gate"
    run = start_thread("substeps", {"log": str(log), "gate": str(gate)}, user=None)
    wait_for(lambda: "slow:start" in log_lines(log), what="slow to start", workers=[worker])
    worker.kill()
    wait_for(lambda: lease_expired(run), timeout=5, what="lease expiry")
    call_command("resume_stalled", stdout=StringIO())
    gate.touch()
    second = start_worker()
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[second])
    assert Counter(log_lines(log)) == {"first": 1, "slow:start": 2, "slow:end": 1, "last": 1}
    (groups,) = subgraph_groups(run.thread).values()
    (chain,) = groups
    assert chain.namespace.startswith("steps")
    steps = [row.step for row in chain.rows]
    assert steps == list(range(steps[0], steps[0] + len(steps))), steps
    assert [row.node for row in chain.rows][-3:] == ["first", "slow", "last"]
    assert len({row.id for row in chain.rows}) == len(chain.rows)


def test_live_worker_keeps_its_lease_through_a_node_longer_than_the_lease(
    start_worker: Any, tmp_path: Path,
) -> None:
    worker = start_worker()
    run, log, gate = start_steps(tmp_path)
    wait_for(lambda: "slow:start" in log_lines(log), what="slow to start", workers=[worker])
    time.sleep(LEASE_SECONDS * 2.5)  # the heartbeat renews every third of a lease
    call_command("resume_stalled", stdout=StringIO())
    assert status_of(run) == Run.Status.RUNNING
    gate.touch()
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[worker])
    run.refresh_from_db()
    assert run.attempts == 1


def test_two_workers_racing_for_one_run_execute_it_once(
    start_worker: Any, tmp_path: Path,
) -> None:
    run, log, gate = start_steps(tmp_path)
    execute_run.enqueue(run.pk)  # the same run delivered twice
    gate.touch()
    workers = [start_worker(), start_worker()]
    wait_for(
        lambda: DBTaskResult.objects.filter(status="SUCCESSFUL").count() == 2,
        what="both deliveries to finish", workers=workers,
    )
    outcomes = sorted(r.return_value["outcome"] for r in DBTaskResult.objects.all())
    assert outcomes == ["skipped", "succeeded"]
    assert Counter(log_lines(log)) == {"first": 1, "slow:start": 1, "slow:end": 1, "last": 1}
    assert status_of(run) == Run.Status.SUCCEEDED


def test_worker_that_lost_its_lease_cannot_write_a_second_branch(
    start_worker: Any, tmp_path: Path,
) -> None:
    first = start_worker()
    run, log, gate = start_steps(tmp_path)
    wait_for(lambda: "slow:start" in log_lines(log), what="slow to start", workers=[first])
    os.kill(first.pid, signal.SIGSTOP)  # frozen: no heartbeat, node still "running"
    wait_for(lambda: lease_expired(run), timeout=5, what="lease expiry")
    call_command("resume_stalled", stdout=StringIO())
    gate.touch()
    second = start_worker()
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[second])
    checkpoints_before = Checkpoint.objects.filter(thread=run.thread).count()

    os.kill(first.pid, signal.SIGCONT)  # wakes up, finishes `slow`, tries to checkpoint
    wait_for(lambda: Event.objects.filter(run=run, kind="run_lease_lost").exists(),
             what="the first worker to notice its lost lease", workers=[first])

    assert Counter(log_lines(log))["slow:end"] == 2  # both ran the node body...
    assert Checkpoint.objects.filter(thread=run.thread).count() == checkpoints_before
    branching = (
        Checkpoint.objects.filter(thread=run.thread).values("parent")
        .annotate(children=Count("id")).filter(children__gt=1)
    )
    assert not branching.exists()  # ...but only one wrote: the tree has no second branch
    assert status_of(run) == Run.Status.SUCCEEDED


def resume_pickup_latencies(worker: Any, samples: int) -> list[float]:
    """Seconds from a resume's commit (its run row) to a worker claiming it, `samples` times."""
    return [measured[0] for measured in pickup_breakdown(worker, samples)]


def pickup_breakdown(worker: Any, samples: int) -> list[tuple[float, float, float, float]]:
    """Per resume, in seconds: run row created -> run claimed (the whole latency); run row
    created -> task row created (the decision's transaction up to the enqueue); task row
    created -> task claimed by the worker (the rest of the decision's transaction, its
    commit, the notification and the worker's wake-up and claim); task claimed -> run
    claimed."""
    measured = []
    for i in range(samples):
        expense = {"expense_id": 100 + i, "employee": "Eve", "vendor": "Hotel",
                   "amount": Decimal("500.00"), "description": "hotel"}
        waiting = start_thread("expense", expense, user=None)
        wait_for_status(waiting, Run.Status.WAITING, workers=[worker])
        resumed = resume_thread(waiting.thread, Command(resume={"action": "approve"}), user=None)
        wait_for_status(resumed, Run.Status.SUCCEEDED, workers=[worker])
        resumed.refresh_from_db()
        task = DBTaskResult.objects.get(pk=resumed.task_result_id)
        measured.append((
            (resumed.started_at - resumed.created_at).total_seconds(),
            (task.enqueued_at - resumed.created_at).total_seconds(),
            (task.started_at - task.enqueued_at).total_seconds(),
            (resumed.started_at - task.started_at).total_seconds(),
        ))
    return measured


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    return (f"p50 {statistics.median(ordered) * 1000:.0f} ms, "
            f"p95 {ordered[int(0.95 * (len(ordered) - 1))] * 1000:.0f} ms")


@pytest.mark.parametrize("command", ["db_worker", "stepwise_worker"])
def test_resume_is_picked_up_by_a_polling_worker_quickly(start_worker: Any, command: str) -> None:
    worker = start_worker(command)
    latencies = sorted(resume_pickup_latencies(worker, samples=9))
    p50, p95 = statistics.median(latencies), latencies[-1]
    print(f"\nresume -> pickup latency, {command} --interval 0.1 on {connection.vendor}: "
          f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (9 samples)")
    assert p50 < 2.0


def test_listening_worker_is_woken_by_a_resume_long_before_its_next_poll(
    start_worker: Any,
) -> None:
    # woken by LISTEN/NOTIFY on PostgreSQL, by a datagram on SQLite (runtime.wakeup)
    worker = start_worker("stepwise_worker", interval=30)  # a poll would come 0-30 s later
    # PICKUP_SAMPLES=30 for the figures in docs/performance.md ("Decision to worker pickup").
    samples = int(os.environ.get("PICKUP_SAMPLES", "3"))
    measured = pickup_breakdown(worker, samples)
    print(f"\nresume -> pickup, stepwise_worker --interval 30 on {connection.vendor}, "
          f"{samples} samples: "
          f"run created -> run claimed {_ms([m[0] for m in measured])}; "
          f"run created -> task created {_ms([m[1] for m in measured])}; "
          f"task created -> task claimed {_ms([m[2] for m in measured])}; "
          f"task claimed -> run claimed {_ms([m[3] for m in measured])}")
    assert max(m[0] for m in measured) < 2.0, measured


def test_a_second_sigterm_does_not_cost_the_hand_back_of_the_run_in_hand(
    start_worker: Any, tmp_path: Path
) -> None:
    """Under bin/serve a worker gets SIGTERM twice: honcho signals its whole process group and
    bin/serve-worker passes the signal on when bash gets to it. The second used to force the exit
    (db_worker's "press Ctrl+C again"), leaving the run in hand running until its lease ran
    out instead of handing it back (found in test_serve on a loaded machine)."""
    worker = start_worker("stepwise_worker")
    run, log, gate = start_steps(tmp_path)
    wait_for(lambda: "slow:start" in log_lines(log), what="slow to start", workers=[worker])
    os.kill(worker.pid, signal.SIGTERM)
    wait_for(lambda: "shutting down gracefully" in worker.output(), what="the worker to stop")
    os.kill(worker.pid, signal.SIGTERM)  # the late second signal
    time.sleep(0.3)
    gate.touch()  # the superstep in progress ends; the run goes back at that boundary
    assert worker.process.wait(timeout=30) == 0, worker.output()[-3000:]

    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED and run.lease_token == "", worker.output()[-3000:]
    kinds = list(Event.objects.filter(run=run).order_by("pk").values_list("kind", flat=True))
    assert kinds[-2:] == ["run_handed_back", "run_requeued"], kinds
    assert log_lines(log) == ["first", "slow:start", "slow:end"]  # `last` never started


def _worker_in_a_task() -> Any:
    from orchestration.runtime.management.commands.stepwise_worker import WakingWorker

    worker = WakingWorker(
        queue_names=["default"], interval=0.1, batch=False, backend_name="default",
        startup_delay=False, max_tasks=None, worker_id="host:1", excluded_queue_names=[],
    )
    worker.running_task = True
    return worker


def test_a_sigterm_handled_inside_the_first_ones_handler_asks_for_the_same_stop() -> None:
    """Python runs a signal's handler between any two bytecodes, inside another handler too:
    under load the second SIGTERM of a served worker arrived while the first one's handler
    ran, after its "is this the first?" check and before the library's, which then forced
    the exit (a fresh-clone CI run's test_serve). Here the second handler runs where the
    first sets STOPPING, as that signal would."""
    from orchestration.runtime.shutdown import STOPPING

    worker = _worker_in_a_task()
    nested: list[bool] = []

    def second_signal(frame: Any, event: str, arg: Any) -> None:
        if (event == "call" and frame.f_code.co_name == "set" and not nested
                and frame.f_locals.get("self") is STOPPING):
            nested.append(True)
            worker.shutdown(signal.SIGTERM, None)

    previous = sys.getprofile()
    sys.setprofile(second_signal)
    try:
        worker.shutdown(signal.SIGTERM, None)  # no SystemExit: the run is handed back
    finally:
        sys.setprofile(previous)
        STOPPING.clear()
    assert nested and worker.running is False


def test_ctrl_c_twice_still_forces_the_stop() -> None:
    from orchestration.runtime.shutdown import STOPPING

    worker = _worker_in_a_task()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    try:
        worker.shutdown(signal.SIGINT, None)
        with pytest.raises(SystemExit) as exit_:
            worker.shutdown(signal.SIGINT, None)
        assert exit_.value.code == 1
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        STOPPING.clear()


def test_a_run_cancelled_while_its_node_runs_is_not_taken_for_a_lost_lease(
    start_worker: Any, tmp_path: Path,
) -> None:
    """Found in an ops trial: a cancel was logged and counted as a lost lease (a WARNING and
    `outcome="lease_lost"`), noise on the lease-loss alert."""
    from orchestration.runtime.runs import cancel_run

    worker = start_worker()
    run, log, gate = start_steps(tmp_path)
    wait_for(lambda: "slow:start" in log_lines(log), what="slow to start", workers=[worker])
    cancel_run(Run.objects.get(pk=run.pk), user=None, reason="not needed")
    gate.touch()
    wait_for(lambda: "state=SUCCESSFUL" in worker.output(), timeout=15,
             what="the worker to stop on the cancel", workers=[worker])
    assert not Event.objects.filter(run=run, kind="run_lease_lost").exists()
    # nothing after the cancel was written (on PostgreSQL, where a step's write is sent ahead,
    # the step after it may still run before the refusal comes back; it writes nothing)
    assert not Checkpoint.objects.filter(thread=run.thread, step__gte=2).exists()
    assert status_of(run) == Run.Status.CANCELLED
