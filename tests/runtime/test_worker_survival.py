"""A worker process survives what goes wrong around its tasks, and the tasks of a worker that
died are finished and, where their work must still happen, queued again (real processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.tasks import task
from django_tasks_db.models import DBTaskResult
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from runtime_helpers import wait_for, wait_for_status

from orchestration.runtime.leases import EXECUTE_RUN_PATH
from orchestration.runtime.models import Run
from orchestration.runtime.runs import start_thread

pytestmark = pytest.mark.django_db(transaction=True)


def unreadable_task() -> DBTaskResult:
    """A queued row the library cannot turn into a task result (its `kwargs` are missing: a
    row written by hand or by another version): `run_task` records it failed and then raises
    while reporting it, outside the task's own execution."""
    return DBTaskResult.objects.create(
        task_path=EXECUTE_RUN_PATH, args_kwargs={"args": [0]}, backend_name="default",
        queue_name="default",
    )


def counted(prom: Path, name: str, **labels: str) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(prom))
    return registry.get_sample_value(name, labels) or 0.0


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_a_worker_survives_an_error_outside_a_task_and_runs_the_next_task(
    start_worker: Any, tmp_path: Path,
) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    bad = unreadable_task()
    worker = start_worker("stepwise_worker", LOG_FORMAT="json", PROMETHEUS_MULTIPROC_DIR=str(prom))
    wait_for(lambda: DBTaskResult.objects.get(pk=bad.pk).status == "FAILED",
             what="the unreadable task to be taken", workers=[worker])
    gate = tmp_path / "gate"
    gate.touch()
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(gate)}, user=None)
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[worker], timeout=60)
    assert worker.process.poll() is None
    errors = [line for line in json_lines(worker.output()) if line["level"] == "ERROR"
              and line.get("task_id") == str(bad.pk)]
    assert errors, worker.output()[-3000:]
    assert errors[0]["task_path"] == EXECUTE_RUN_PATH
    assert errors[0]["failures_in_a_row"] == 1 and errors[0]["worker_id"]
    assert "KeyError" in errors[0]["exc_info"]
    assert counted(prom, "stepwise_worker_errors_total", kind="unexpected") == 1


def test_a_task_that_raises_is_a_failed_result_and_not_a_worker_error(
    start_worker: Any, tmp_path: Path,
) -> None:
    from worker_tasks import refuse

    prom = tmp_path / "prom"
    prom.mkdir()
    failing = refuse.enqueue("no such customer")
    worker = start_worker("stepwise_worker", PROMETHEUS_MULTIPROC_DIR=str(prom))
    gate = tmp_path / "gate"
    gate.touch()
    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": str(gate)}, user=None)
    wait_for_status(run, Run.Status.SUCCEEDED, workers=[worker], timeout=60)
    row = DBTaskResult.objects.get(pk=failing.id)
    assert row.status == "FAILED" and row.exception_class_path == "builtins.ValueError"
    assert "no such customer" in row.traceback
    assert worker.process.poll() is None
    assert counted(prom, "stepwise_worker_errors_total", kind="unexpected") == 0


def test_errors_in_a_row_up_to_the_limit_end_the_worker_with_status_1(
    start_worker: Any,
) -> None:
    bad = [unreadable_task() for _ in range(3)]
    worker = start_worker("stepwise_worker", LOG_FORMAT="json", STEPWISE_WORKER_MAX_ERRORS="2")
    assert worker.process.wait(timeout=60) == 1
    lines = json_lines(worker.output())
    assert [line["failures_in_a_row"] for line in lines if line["level"] == "ERROR"
            and "failures_in_a_row" in line] == [1, 2]
    assert any(line["level"] == "CRITICAL" and "STEPWISE_WORKER_MAX_ERRORS" in line["message"]
               for line in lines)
    # the third row was never taken; the clean stop is recorded for /readyz
    assert sorted(DBTaskResult.objects.filter(pk__in=[b.pk for b in bad])
                  .values_list("status", flat=True)) == ["FAILED", "FAILED", "READY"]
    from orchestration.runtime.models import WorkerProcess

    assert WorkerProcess.objects.get().stopped_at is not None


def test_backoff_doubles_from_a_second_up_to_a_minute() -> None:
    from orchestration.runtime.management.commands.stepwise_worker import backoff

    assert [backoff(n) for n in (1, 2, 3, 4, 7, 8, 30)] == [1, 2, 4, 8, 60, 60, 60]


class Receiver:
    """A webhook receiver on a spare port: records each POST's event id and body; holds the
    first one open until `release` (the worker is killed meanwhile)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.seen: list[tuple[str, bytes]] = []
        self.held = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.seen.append((self.headers["Stepwise-Event-Id"], body))
                if len(receiver.seen) == 1:
                    receiver.held.set()
                    receiver.release.wait(30)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:  # the worker that sent it is dead
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.close()


def sweep() -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("resume_stalled", stdout=out, stderr=out)
    return out.getvalue()


def test_a_webhook_whose_worker_was_killed_mid_post_is_sent_again_with_the_same_event(
    start_worker: Any, receiver: Receiver,
) -> None:
    import time

    from approvals.api.models import WebhookDelivery, WebhookEndpoint
    from approvals.api.webhooks import send_test_event

    endpoint = WebhookEndpoint.objects.create(url=receiver.url, secret="s" * 32)
    delivery = send_test_event(endpoint)
    task = DBTaskResult.objects.get()
    worker = start_worker("stepwise_worker")
    wait_for(receiver.held.is_set, what="the POST to arrive", workers=[worker])
    worker.kill()  # mid-POST: its task row stays RUNNING, the delivery pending
    receiver.release.set()
    task.refresh_from_db()
    assert task.status == "RUNNING" and task.worker_ids[-1].endswith(f":{worker.pid}")
    time.sleep(1.2)  # a lease (1 s): the worker's heartbeat is stale
    out = sweep()
    task.refresh_from_db()
    again = DBTaskResult.objects.exclude(pk=task.pk).get()
    assert task.status == "FAILED", out
    assert task.exception_class_path == "orchestration.runtime.errors.WorkerLost"
    assert f"re-enqueued as task {again.pk}" in task.traceback
    assert (again.status, again.task_path, again.args_kwargs, again.queue_name) == (
        "READY", task.task_path, task.args_kwargs, task.queue_name)
    assert f"task {task.pk}" in out
    assert sweep().count("re-enqueued") == 0  # a second sweep finds nothing more

    second = start_worker("stepwise_worker")
    # the delivery commits its outcome first, the library the task's result after it
    wait_for(lambda: DBTaskResult.objects.get(pk=again.pk).status == "SUCCESSFUL",
             what="the delivery task", workers=[second])
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered"
    # the receiver saw the same event twice, byte for byte: it keeps one
    assert len(receiver.seen) == 2 and receiver.seen[0] == receiver.seen[1]
    assert receiver.seen[0][0] == str(delivery.event_id)


# --- which rows the sweeper takes as lost, and what it does with them (in-process rows) ---


def claimed(task: Any, *args: Any, worker: str = "host:4242") -> DBTaskResult:
    """What a worker leaves when it takes `task(*args)`: the library's own claim."""
    row = DBTaskResult.objects.get(pk=task.enqueue(*args).id)
    row.claim(worker)
    return row


def beat_as(worker: str, *, seen_ago: float = 0.0, started_ago: float = 60.0,
            stopped: bool = False) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from orchestration.runtime.models import WorkerProcess

    now = timezone.now()
    WorkerProcess.objects.update_or_create(worker_id=worker, defaults={
        "hostname": "host", "pid": 1, "started_at": now - timedelta(seconds=started_ago),
        "last_seen_at": now - timedelta(seconds=seen_ago), "stopped_at": now if stopped else None,
    })


def overdue_email() -> Any:
    from approvals.notify import email_review_overdue

    return email_review_overdue


def test_a_live_workers_task_and_a_task_of_a_worker_that_never_beat_are_left_alone() -> None:
    from orchestration.runtime.lost_tasks import sweep_lost_tasks
    from orchestration.runtime.workers import WorkerBeat

    with WorkerBeat("host:1"):
        live = claimed(overdue_email(), 1, worker="host:1")
        unknown = claimed(overdue_email(), 2, worker="plain-db-worker")
        assert sweep_lost_tasks() == []
    for row in (live, unknown):
        row.refresh_from_db()
        assert row.status == "RUNNING"
    assert DBTaskResult.objects.count() == 2


@pytest.mark.parametrize(("state", "why"), [
    ({"seen_ago": 5.0}, "not seen since"),
    ({"stopped": True}, "stopped without finishing the task"),
    ({"started_ago": -1.0}, "restarted after it took the task"),  # same host:pid, new process
])
def test_a_task_of_a_dead_stopped_or_replaced_worker_is_sent_again(
    state: dict[str, Any], why: str,
) -> None:
    from orchestration.runtime.lost_tasks import sweep_lost_tasks

    row = claimed(overdue_email(), 7)
    beat_as("host:4242", **state)
    [lost] = sweep_lost_tasks()
    again = DBTaskResult.objects.exclude(pk=row.pk).get()
    assert (lost.task_id, lost.outcome, lost.worker) == (str(row.pk), "requeued", "host:4242")
    row.refresh_from_db()
    assert row.status == "FAILED" and why in row.traceback
    assert (again.status, again.task_path, again.args_kwargs) == (
        "READY", "approvals.notify.email_review_overdue", {"args": [7], "kwargs": {}})
    assert sweep_lost_tasks() == []  # finished once: a second sweeper finds nothing


@task()
def undeclared(text: str) -> str:
    """A task nobody declared `retry_when_worker_lost`."""
    return text


def test_a_lost_task_not_declared_retryable_is_finished_but_not_sent_again() -> None:
    from orchestration.runtime.lost_tasks import sweep_lost_tasks

    row = claimed(undeclared, "hello")
    beat_as("host:4242", seen_ago=5.0)
    [lost] = sweep_lost_tasks()
    assert lost.outcome == "failed" and "is not declared retry_when_worker_lost" in lost.detail
    row.refresh_from_db()
    assert row.status == "FAILED" and row.exception_class_path.endswith("WorkerLost")
    assert DBTaskResult.objects.count() == 1


def test_a_lost_task_finished_meanwhile_keeps_its_result_and_gets_no_copy() -> None:
    from orchestration.runtime.lost_tasks import lost_rows, recover

    row = claimed(overdue_email(), 7)
    beat_as("host:4242", seen_ago=5.0)
    [(seen, why)] = lost_rows()
    row.set_successful({"sent": 1})  # the worker was only slow
    assert recover(seen, why) is None
    row.refresh_from_db()
    assert row.status == "SUCCESSFUL"
    assert DBTaskResult.objects.count() == 1  # the copy rolled back with the refused finish


def test_a_lost_run_execution_is_left_to_its_lease_unless_the_run_already_ended(
    tmp_path: Path,
) -> None:
    from orchestration.runtime.lost_tasks import sweep_lost_tasks

    run = start_thread("steps", {"log": str(tmp_path / "log"), "gate": ""}, user=None)
    row = DBTaskResult.objects.get(pk=Run.objects.get(pk=run.pk).task_result_id)
    row.claim("host:4242")
    beat_as("host:4242", seen_ago=5.0)
    assert sweep_lost_tasks() == []  # queued, running or stalled: the run sweep decides
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)  # recorded, then killed
    [lost] = sweep_lost_tasks()
    assert lost.outcome == "failed" and "is already succeeded: nothing to redo" in lost.detail
    row.refresh_from_db()
    assert row.status == "FAILED"
    assert DBTaskResult.objects.count() == 1


def test_a_row_whose_result_the_worker_could_not_record_is_finished_once_it_can() -> None:
    """`run_task` raised (the library could not record the result): the row would stay
    RUNNING under a live worker, which no sweeper judges; the worker finishes it itself on
    its next round, like a dead worker's, and its work is queued again."""
    from orchestration.runtime.management.commands.stepwise_worker import WakingWorker

    worker = WakingWorker(
        queue_names=["default"], interval=0.1, batch=True, backend_name="default",
        startup_delay=False, max_tasks=None, worker_id="host:5", excluded_queue_names=[],
    )
    row = claimed(overdue_email(), 7, worker="host:5")
    worker.unrecorded.append(row)
    worker._record_unrecorded()
    assert worker.unrecorded == []
    row.refresh_from_db()
    assert row.status == "FAILED"
    assert "worker host:5 could not record the task's result; re-enqueued as task" in row.traceback
    assert DBTaskResult.objects.filter(status="READY").count() == 1


def test_a_dry_run_lists_lost_tasks_and_changes_nothing() -> None:
    from io import StringIO

    from django.core.management import call_command

    row = claimed(overdue_email(), 7)
    beat_as("host:4242", seen_ago=5.0)
    out = StringIO()
    call_command("resume_stalled", "--dry-run", stdout=out)
    assert f"would finish task {row.pk} (approvals.notify.email_review_overdue)" in out.getvalue()
    row.refresh_from_db()
    assert row.status == "RUNNING" and DBTaskResult.objects.count() == 1


def test_a_delivery_whose_task_raised_is_queued_again_by_sweep_reviews_once() -> None:
    """A delivery task that raised (say the database failed between the POST and its record)
    leaves its row FAILED and the delivery pending with nothing queued: the claims sweeper
    queues it again, once, and leaves alone deliveries whose task waits or runs."""
    from datetime import timedelta
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    from approvals.api.models import WebhookDelivery, WebhookEndpoint
    from approvals.api.webhooks import requeue_stuck_deliveries, send_test_event

    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s" * 32)
    stuck, waiting = send_test_event(endpoint), send_test_event(endpoint)
    due = timezone.now() - timedelta(minutes=5)
    WebhookDelivery.objects.update(next_attempt_at=due, attempts=1)
    row = DBTaskResult.objects.get(args_kwargs__args=[stuck.pk])
    row.claim("host:1")
    row.set_failed(RuntimeError("database went away while recording attempt 1"))
    out = StringIO()
    call_command("sweep_reviews", stdout=out)
    assert f"queued stuck webhook deliveries [{stuck.pk}] again" in out.getvalue()
    again = DBTaskResult.objects.get(status="READY", args_kwargs__args=[stuck.pk])
    assert again.task_path == "approvals.api.webhooks.deliver_webhook"
    assert requeue_stuck_deliveries() == []  # its new task waits: nothing more to do
    assert DBTaskResult.objects.filter(args_kwargs__args=[waiting.pk]).count() == 1
