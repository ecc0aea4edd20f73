"""Stalled runs heal themselves within their graph's policy (`resume_stalled --auto`).

Real worker processes are killed where the behaviour needs them (a dead worker noticed within
the lease, its run finished by another worker); attempts and give-ups use the runtime's own
`leases.claim` with a short lease as "a worker that took the run and died", which is what a
killed worker leaves behind in the database.
"""

from __future__ import annotations

import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from runtime_helpers import ROOT, log_lines, subprocess_env, wait_for, wait_for_status

from orchestration.runtime import leases
from orchestration.runtime.healing import AUTO_RESUMED, NEEDS_OPS, heal_stalled, needs_ops_q
from orchestration.runtime.models import Event, Run, WorkerProcess
from orchestration.runtime.registry import GraphRegistryError, StallPolicy, stall_policy
from orchestration.runtime.runs import start_thread
from orchestration.runtime.signals import run_stalled
from orchestration.runtime.workers import WorkerBeat, fresh_workers

pytestmark = pytest.mark.django_db(transaction=True)


def policy(settings: Any, **entries: Any) -> None:
    settings.STEPWISE_STALL_POLICY = entries


def abandoned(run: Run) -> None:
    """A worker takes the run and dies: its lease (0.05 s) is never renewed."""
    assert leases.claim(run.pk, seconds=0.05) is not None
    time.sleep(0.1)


def sweep() -> str:
    out = StringIO()
    call_command("resume_stalled", "--auto", stdout=out, stderr=out)
    return out.getvalue()


@pytest.fixture
def stalls() -> Any:
    """The run_stalled signals sent (a real receiver on the real signal)."""
    seen: list[tuple[int, bool]] = []

    def receiver(sender: Any, run: Run, needs_ops: bool = False, **kwargs: Any) -> None:
        seen.append((run.pk, needs_ops))

    run_stalled.connect(receiver, dispatch_uid="test-stalls")
    yield seen
    run_stalled.disconnect(dispatch_uid="test-stalls")


def test_policy_comes_from_settings_per_graph_with_a_default(settings: Any) -> None:
    policy(settings, default={"max_attempts": 3, "backoff_seconds": 2, "factor": 3},
           steps=None, reviewed={"max_attempts": 1})
    assert stall_policy("expense").max_attempts == 3
    assert [stall_policy("expense").delay(n) for n in (1, 2, 3)] == [2, 6, 18]
    assert not stall_policy("steps").enabled
    assert stall_policy("reviewed").max_attempts == 1
    settings.STEPWISE_STALL_POLICY = {"default": {"retries": 3}}
    with pytest.raises(GraphRegistryError, match="max_attempts, backoff_seconds"):
        stall_policy("expense")
    with pytest.raises(GraphRegistryError, match="factor >= 1"):
        StallPolicy(factor=0.5)


def test_a_stalled_run_is_resumed_after_its_backoff_and_each_attempt_is_recorded(
    settings: Any, tmp_path: Path, stalls: list[Any],
) -> None:
    policy(settings, default={"max_attempts": 3, "backoff_seconds": 0.6, "factor": 2})
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    abandoned(run)
    sweep()
    assert Run.objects.get(pk=run.pk).status == Run.Status.STALLED
    assert not Event.objects.filter(run=run, kind=AUTO_RESUMED).exists()  # backoff not over
    time.sleep(0.7)
    assert "resumed run" in sweep()
    attempt = Event.objects.get(run=run, kind=AUTO_RESUMED)
    assert attempt.data == {"attempt": 1, "max_attempts": 3, "delay_seconds": 0.6}
    assert "automatic resume 1 of 3" in attempt.reason
    assert Event.objects.filter(run=run, kind="run_requeued").count() == 1
    # the re-queued task waits for a worker: another sweep is no second attempt
    sweep()
    assert Event.objects.filter(run=run, kind=AUTO_RESUMED).count() == 1
    # a transient stall the policy handles tells nobody
    assert stalls == []


def test_a_run_ops_resumed_is_not_resumed_again_by_the_sweeper(settings: Any, tmp_path: Path
                                                                ) -> None:
    """Found in an ops trial: a run resumed by ops (or handed back by a stopping worker) was
    taken for a fresh stall 5 s later: a second task, an attempt of the policy spent."""
    from orchestration.runtime.runs import resume_stalled

    policy(settings, default={"max_attempts": 3, "backoff_seconds": 0})
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    abandoned(run)
    resume_stalled(Run.objects.get(pk=run.pk), reason="ops: resumed by hand")
    out = sweep()
    assert "resumed run" not in out
    assert not Event.objects.filter(run=run, kind=AUTO_RESUMED).exists()
    tasks = DBTaskResult.objects.filter(task_path=leases.EXECUTE_RUN_PATH, status="READY")
    # the start's (no real worker took it here) and the ops resume's: no third
    assert sum(1 for t in tasks if t.args_kwargs["args"][0] == run.pk) == 2


def test_the_thread_history_shows_an_automatic_resume_as_one_line(
    settings: Any, tmp_path: Path, django_user_model: Any,
) -> None:
    from approvals.selectors import thread_history
    from orchestration.runtime.runs import resume_stalled

    policy(settings, default={"max_attempts": 3, "backoff_seconds": 0, "factor": 1})
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    abandoned(run)
    assert "resumed run" in sweep()
    # both events stay (the policy counts its attempts), the history reads them as one
    assert Event.objects.filter(run=run, kind="run_requeued").count() == 1
    kinds = [item.kind for item in thread_history(run.thread)]
    assert kinds.count(AUTO_RESUMED) == 1 and "run_requeued" not in kinds
    # an operator's resume of the same run is its own line, with its own reason
    Run.objects.filter(pk=run.pk).update(status=Run.Status.STALLED)
    resume_stalled(Run.objects.get(pk=run.pk), reason="ops: worker host rebooted",
                   user=django_user_model.objects.create_user("olga", "o@example.com", "x"))
    requeued = [item for item in thread_history(run.thread) if item.kind == "run_requeued"]
    assert [(item.reason, item.actor) for item in requeued] == [
        ("ops: worker host rebooted", "olga")]


def test_after_the_last_attempt_the_run_fails_as_needs_ops_and_ops_hear_of_it(
    settings: Any, tmp_path: Path, stalls: list[Any], django_user_model: Any,
) -> None:
    from django.contrib.auth.models import Group

    from approvals.api.models import WebhookDelivery, WebhookEndpoint

    policy(settings, default={"max_attempts": 2, "backoff_seconds": 0, "factor": 1})
    ops = django_user_model.objects.create_user("olga", "olga@example.com", "x")
    ops.groups.add(Group.objects.get_or_create(name=settings.STEPWISE_ESCALATE_TO_GROUP)[0])
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s" * 32,
                                   event_types=["run.stalled"])
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    for _ in range(2):
        abandoned(run)  # a worker takes it and dies
        sweep()         # stalled, and resumed at once (no backoff)
        DBTaskResult.objects.filter(status="READY").delete()  # the task went to that worker
    abandoned(run)
    out = sweep()
    assert "needs ops" in out
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error.startswith("needs ops: the run stalled again after 2 automatic resumes")
    assert run.thread.status == "failed"
    assert Event.objects.filter(run=run, kind=AUTO_RESUMED).count() == 2
    gave_up = Event.objects.get(run=run, kind=NEEDS_OPS)
    assert gave_up.data["attempts"] == 2
    assert list(Run.objects.filter(needs_ops_q())) == [run]
    assert stalls == [(run.pk, True)]  # ops hear once, when they are needed
    delivery = WebhookDelivery.objects.get(event_type="run.stalled")
    assert '"needs_ops": true' in delivery.body
    # the e-mail to the ops group is a task the worker sends
    email = DBTaskResult.objects.get(task_path="approvals.observability.email_run_needs_ops")
    from approvals.observability import email_run_needs_ops

    assert email_run_needs_ops.call(run.pk) == {"run": run.pk, "sent": 1}
    assert mail.outbox[-1].to == ["olga@example.com"]
    assert f"Run {run.pk} needs ops" in mail.outbox[-1].subject
    assert email.args_kwargs["args"] == [run.pk]
    # nothing more happens on its own: the next sweeps leave it for ops
    sweep()
    assert Event.objects.filter(run=run, kind=AUTO_RESUMED).count() == 2


def taken_and_lost(run: Run) -> DBTaskResult:
    """What a SIGKILLed worker leaves: its task row claimed (RUNNING, the library's own
    `claim`), the run claimed under a lease that is never renewed."""
    task = DBTaskResult.objects.get(pk=Run.objects.get(pk=run.pk).task_result_id)
    assert task.status == "READY"
    task.claim("host:4242")
    abandoned(run)
    return task


def test_a_requeued_run_finishes_the_task_row_of_the_worker_that_lost_it(
    settings: Any, tmp_path: Path,
) -> None:
    policy(settings, default={"max_attempts": 3, "backoff_seconds": 0})
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    lost = taken_and_lost(run)
    assert "resumed run" in sweep()
    run.refresh_from_db()
    assert run.task_result_id != str(lost.pk)  # the new task waits for a worker
    lost.refresh_from_db()
    assert lost.status == "FAILED" and lost.finished_at is not None
    assert lost.exception_class_path == "orchestration.runtime.errors.WorkerLost"
    assert f"worker lost; run requeued as task {run.task_result_id}" in lost.traceback
    assert DBTaskResult.objects.get(pk=run.task_result_id).status == "READY"
    assert not DBTaskResult.objects.filter(status="RUNNING").exists()


def test_a_lost_task_that_its_worker_finished_meanwhile_keeps_its_result(
    settings: Any, tmp_path: Path,
) -> None:
    from orchestration.runtime.runs import finish_lost_task

    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    task = DBTaskResult.objects.get(pk=Run.objects.get(pk=run.pk).task_result_id)
    task.claim("host:1")
    task.set_successful({"run_id": run.pk, "outcome": "lease_lost"})
    assert not finish_lost_task(str(task.pk), "run requeued as task x")
    task.refresh_from_db()
    assert task.status == "SUCCESSFUL"
    assert not finish_lost_task("", "no task") and not finish_lost_task("not-a-uuid", "other")


def test_a_run_given_up_on_finishes_its_lost_task_row_too(
    settings: Any, tmp_path: Path,
) -> None:
    policy(settings, default={"max_attempts": 1, "backoff_seconds": 0})
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    first = taken_and_lost(run)
    sweep()  # resumed once
    second = taken_and_lost(run)
    assert "needs ops" in sweep()
    for task in (first, second):
        task.refresh_from_db()
        assert task.status == "FAILED"
    assert "worker lost; run failed after its automatic resumes: needs ops" in second.traceback
    assert not DBTaskResult.objects.filter(status="RUNNING").exists()


def test_cancelling_a_stalled_run_finishes_its_lost_task_row(
    settings: Any, tmp_path: Path,
) -> None:
    from orchestration.runtime.runs import cancel_run

    policy(settings, default={"max_attempts": 3, "backoff_seconds": 0}, steps=None)
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    lost = taken_and_lost(run)
    sweep()  # stalled; the graph opted out, so it waits for ops
    run.refresh_from_db()
    assert run.status == Run.Status.STALLED
    cancel_run(run, user=None, reason="not worth it")
    lost.refresh_from_db()
    assert lost.status == "FAILED" and "worker lost; run cancelled" in lost.traceback


def test_a_graph_that_opts_out_leaves_its_stalled_runs_to_ops(
    settings: Any, tmp_path: Path, stalls: list[Any],
) -> None:
    policy(settings, default={"max_attempts": 5, "backoff_seconds": 0}, steps=None)
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    abandoned(run)
    sweep()
    assert Run.objects.get(pk=run.pk).status == Run.Status.STALLED
    assert [h.outcome for h in heal_stalled()] == ["manual"]
    assert not Event.objects.filter(run=run, kind=AUTO_RESUMED).exists()
    assert stalls == [(run.pk, False)]  # ops are told at the stall: they decide


def test_auto_and_mark_only_contradict(db: None) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="pick one"):
        call_command("resume_stalled", "--auto", "--mark-only")


def test_a_dead_worker_is_noticed_within_the_lease_and_its_run_finishes_elsewhere(
    start_worker: Any, tmp_path: Path,
) -> None:
    """Real processes: a worker SIGKILLed mid-node, a sweeper watching every sixth of a lease
    (`--watch auto`), a second worker that finishes the run from its last checkpoint."""
    lease = 2.0
    env = {"STEPWISE_LEASE_SECONDS": str(lease), "STEPWISE_STALL_BACKOFF_SECONDS": "0"}
    log, gate = tmp_path / "nodes.log", tmp_path / "gate"
    worker = start_worker(**env)
    run = start_thread("steps", {"log": str(log), "gate": str(gate)}, user=None)
    sweeper_env = subprocess_env() | env
    sweeper = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "resume_stalled", "--auto", "--watch", "auto"],
        cwd=ROOT, env=sweeper_env, stdout=(tmp_path / "sweeper.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: "slow:start" in log_lines(log), what="slow to start", workers=[worker])
        worker.kill()
        killed_at = timezone.now()
        wait_for(lambda: Event.objects.filter(run=run, kind="run_stalled").exists(),
                 timeout=lease * 3, what="the stall to be noticed")
        noticed = Event.objects.get(run=run, kind="run_stalled").created_at
        # the last renewal was at most a third of a lease before the kill; the sweeper looks
        # every sixth: noticed within one lease of the death (a quarter lease of slack for
        # a loaded 2-core machine)
        assert (noticed - killed_at).total_seconds() < lease * 1.25
        gate.touch()
        # The worker that finishes the run holds a lease of its own length: what is tested is
        # how the first one's death is noticed. With 2 s, a CI run on a loaded 2-core machine
        # (CPU steal included) let that lease lapse too, and the run was resumed twice.
        second = start_worker(**{**env, "STEPWISE_LEASE_SECONDS": "10"})
        wait_for_status(run, Run.Status.SUCCEEDED, workers=[second], timeout=30)
    finally:
        sweeper.terminate()
        sweeper.wait(timeout=10)
    assert log_lines(log).count("first") == 1  # finished supersteps never re-run
    assert log_lines(log).count("last") == 1
    assert Event.objects.filter(run=run, kind=AUTO_RESUMED).count() == 1
    # the SIGKILLed worker's task row is finished, not RUNNING forever
    lost = DBTaskResult.objects.get(task_path=leases.EXECUTE_RUN_PATH, status="FAILED")
    assert "worker lost; run requeued as task" in lost.traceback
    assert not DBTaskResult.objects.filter(status="RUNNING").exists()


def test_a_worker_stopped_past_its_lease_runs_no_further_step_when_it_wakes(
    start_worker: Any, tmp_path: Path,
) -> None:
    """Found in an ops trial: a worker SIGSTOPped past its lease, whose run another worker
    finished, woke and ran one more step (on PostgreSQL its write is sent ahead and refused
    only when the next one collects it, behind the step). It now stops before starting a
    step once its lease went unrenewed for a lease and it cannot renew it."""
    import os
    import signal

    lease = 2.0
    env = {"STEPWISE_LEASE_SECONDS": str(lease), "STEPWISE_STALL_BACKOFF_SECONDS": "0"}
    log, gate = tmp_path / "nodes.log", tmp_path / "gate"
    sleeper = start_worker(**env)
    run = start_thread("steps", {"log": str(log), "gate": str(gate)}, user=None)
    sweeper = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "resume_stalled", "--auto", "--watch", "auto"],
        cwd=ROOT, env=subprocess_env() | env, stdout=(tmp_path / "sweeper.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: "slow:start" in log_lines(log), what="slow to start",
                 workers=[sleeper])
        os.kill(sleeper.process.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: Event.objects.filter(run=run, kind="run_stalled").exists(),
                     timeout=lease * 4, what="the stall to be noticed")
            gate.touch()  # the second worker runs slow again and finishes the run
            second = start_worker(**{**env, "STEPWISE_LEASE_SECONDS": "10"})
            wait_for_status(run, Run.Status.SUCCEEDED, workers=[second], timeout=30)
        finally:
            os.kill(sleeper.process.pid, signal.SIGCONT)
        # the sleeper wakes inside slow (its gate is open now) and finishes that node; the
        # step after it (`last`) must not run a second time
        wait_for(lambda: log_lines(log).count("slow:end") >= 2, timeout=10,
                 what="the woken worker to finish its node")
        time.sleep(1.0)
    finally:
        sweeper.terminate()
        sweeper.wait(timeout=10)
    assert log_lines(log).count("first") == 1
    assert log_lines(log).count("last") == 1


def test_worker_processes_beat_and_a_clean_stop_is_recorded(db: None, settings: Any) -> None:
    settings.STEPWISE_LEASE_SECONDS = 0.6  # beat every 0.2 s
    with WorkerBeat("host:123") as beat:
        assert fresh_workers() == 1
        wait_for(lambda: WorkerProcess.objects.get(worker_id="host:123").beats >= 2,
                 timeout=5, what="two beats")
        assert beat.interval == pytest.approx(0.2)
    row = WorkerProcess.objects.get(worker_id="host:123")
    assert row.stopped_at is not None
    assert fresh_workers() == 0


def test_a_killed_worker_process_stops_being_fresh(start_worker: Any, settings: Any) -> None:
    settings.STEPWISE_LEASE_SECONDS = 0.6
    worker = start_worker("stepwise_worker", STEPWISE_LEASE_SECONDS="0.6")
    wait_for(lambda: fresh_workers() == 1, timeout=20, what="the worker's first beat",
             workers=[worker])
    worker.kill()
    wait_for(lambda: fresh_workers() == 0, timeout=5, what="the dead worker to go stale")
    assert WorkerProcess.objects.get().stopped_at is None  # killed: no clean stop


def test_a_broken_policy_fails_the_system_check(settings: Any) -> None:
    from orchestration.runtime.checks import check_stall_policies

    settings.STEPWISE_STALL_POLICY = {"default": {"max_attempts": 2}, "steps": {"tries": 1}}
    problems = check_stall_policies()
    assert [p.id for p in problems] == ["stepwise.E004"]
    assert "STEPWISE_STALL_POLICY['steps']" in problems[0].obj

