"""Runs and notifications on their own task queues (`orchestration.runtime.queues`).

In an ops trial a run waited 24.5 s behind webhook deliveries to a receiver that took 8 s to
answer: deliveries, e-mails and runs shared one queue, so a worker sending a webhook ran no
step meanwhile. Notifications now go to the `notify` queue, which the serving profile gives
workers of its own; these tests hold that apart with real workers and a real receiver.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from api_live import Receiver, start_worker
from django.conf import settings
from django.core.management import load_command_class
from django_tasks_db.models import DBTaskResult

from approvals.actions import DecisionInput, do_decide
from approvals.api.models import WebhookDelivery, WebhookEndpoint
from approvals.api.webhooks import deliver_webhook
from approvals.models import ReviewRequest
from approvals.notify import email_review_overdue, email_review_requested
from approvals.observability import email_run_needs_ops
from orchestration.runtime import queues, runs
from orchestration.runtime.models import Run
from orchestration.runtime.tasks import execute_run
from orchestration.runtime.workers import WorkerBeat, unserved_queues

ROOT = Path(__file__).resolve().parents[2]


def test_notifications_and_runs_are_queued_apart() -> None:
    for job in (deliver_webhook, email_review_requested, email_review_overdue,
                email_run_needs_ops):
        assert job.queue_name == queues.NOTIFY, job.name
    assert execute_run.queue_name == queues.RUNS
    assert settings.TASKS["default"]["QUEUES"] == list(queues.ALL)


def test_a_worker_started_without_queue_name_takes_every_queue() -> None:
    """db_worker's default is Django's default queue only: a worker started the plain way
    would leave every notification unsent."""
    command = load_command_class("orchestration.runtime", "stepwise_worker")
    options = command.create_parser("manage.py", "stepwise_worker").parse_args([])
    assert options.queue_name == "*"


@pytest.mark.django_db(transaction=True)
def test_a_review_request_webhook_is_queued_on_notify(start_paused: Any) -> None:
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s",
                                   event_types=["review.requested"])
    start_paused()
    (delivery,) = WebhookDelivery.objects.all()
    row = DBTaskResult.objects.get(task_path=deliver_webhook.module_path,
                                   args_kwargs__args=[delivery.pk])
    assert row.queue_name == queues.NOTIFY


@pytest.mark.django_db(transaction=True)
def test_a_run_is_not_held_behind_a_slow_webhook_receiver(tmp_path: Path, make_user: Any) -> None:
    """The receiver holds its first request until the run, decided meanwhile, is done: with
    deliveries on the runs' queue the worker of runs sits in that POST and the run waits."""
    hold = tmp_path / "hold"
    hold.touch()
    receiver = Receiver(tmp_path, statuses=[], hold=hold)
    WebhookEndpoint.objects.create(url=receiver.url, secret="s", event_types=["review.requested"])
    # the POST is never cut short within the test: the run must finish with it unanswered
    patient = {"STEPWISE_WEBHOOK_TIMEOUT_SECONDS": "300"}
    runner = start_worker(tmp_path, queues=queues.RUNS, name="runs", **patient)
    notifier = start_worker(tmp_path, queues=queues.NOTIFY, name="notify", **patient)
    try:
        run = runs.start_thread("web_review", {"title": "Held", "amount": 5.0},
                                user=make_user("ops"))
        review = _wait(lambda: ReviewRequest.objects.filter(thread=run.thread).first(),
                       runner, "the run to reach its review")
        receiver.wait_for(1)  # the delivery is in the receiver's hands, unanswered
        do_decide(make_user("reviewer"), review, DecisionInput(action="approve"))
        _wait(lambda: Run.objects.filter(thread=run.thread, status=Run.Status.SUCCEEDED).exists(),
              runner, "the decided run to finish while the receiver holds its request")
        assert hold.exists() and len(receiver.requests()) == 1
        assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.PENDING
        hold.unlink()
        _wait(lambda: WebhookDelivery.objects.get().status == WebhookDelivery.Status.DELIVERED,
              notifier, "the delivery once the receiver answers")
    finally:
        hold.unlink(missing_ok=True)
        runner.stop()
        notifier.stop()
        receiver.process.stop()


def _wait(found: Any, worker: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := found()):
        assert time.monotonic() < deadline, f"waited for {what}:\n{worker.output()}"
        time.sleep(0.05)
    return value


@pytest.mark.django_db
def test_the_ops_console_says_when_no_worker_sends_notifications(
    client_as: Any, start_paused: Any
) -> None:
    WebhookEndpoint.objects.create(url="http://127.0.0.1:9/hook", secret="s",
                                   event_types=["review.requested"])
    start_paused()
    ops = client_as("ops")
    with WorkerBeat("runs-only:1", queues=[queues.RUNS]):
        assert unserved_queues() == {queues.NOTIFY: 1}
        page = ops.get("/ops/").content.decode()
        assert 'data-unserved-queue="notify"' in page
        assert "1 webhook delivery and e-mails waits" in page
        assert "bin/serve-worker notify" in page
        with WorkerBeat("notify:1", queues=[queues.NOTIFY]):
            assert unserved_queues() == {}
            assert "data-unserved-queue" not in ops.get("/ops/").content.decode()
