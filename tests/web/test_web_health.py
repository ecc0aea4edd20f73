"""Probes and metrics: `/healthz`, `/readyz`, `/metrics` without a session; `/metrics` only
with the token or from an allowed address; the ops console lists needs-ops runs first."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from approvals.models import ReviewRequest
from orchestration.runtime.healing import NEEDS_OPS
from orchestration.runtime.models import Event, Run
from orchestration.runtime.workers import WorkerBeat

pytestmark = pytest.mark.django_db


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, by name and labels."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def test_healthz_answers_without_a_session_and_sets_no_cookie() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert not response.cookies


def test_readyz_needs_a_fresh_worker_heartbeat(settings: Any) -> None:
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["channel_layer"]["ok"] is True
    assert body["checks"]["worker"] == {
        "ok": False, "detail": body["checks"]["worker"]["detail"]}
    assert "no worker of runs (queue 'default') beat" in body["checks"]["worker"]["detail"]
    with WorkerBeat("probe-host:1"):
        ready = Client().get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json()["status"] == "ready"


def test_readyz_needs_a_worker_of_runs_not_only_of_notifications(settings: Any) -> None:
    """A pool of `notify` workers alone sends e-mails while every decision's run waits."""
    with WorkerBeat("probe-host:3", queues=["notify"]):
        alone = Client().get("/readyz")
        with WorkerBeat("probe-host:4", queues=["default", "notify"]):
            both = Client().get("/readyz")
    assert alone.status_code == 503, alone.content
    assert "no worker of runs" in alone.json()["checks"]["worker"]["detail"]
    assert both.status_code == 200, both.content


def test_metrics_count_live_workers_per_queue(settings: Any) -> None:
    """`stepwise_queue_workers_alive{queue}` beside the queue's depth: an alert on depth > 0
    with no worker of that queue catches notifications nobody sends."""
    with WorkerBeat("q-host:1", queues=["notify"]), WorkerBeat("q-host:2"):
        text = Client().get("/metrics").content.decode()
    assert sample(text, "stepwise_queue_workers_alive", queue="notify") == 2
    assert sample(text, "stepwise_queue_workers_alive", queue="default") == 1
    assert sample(text, "stepwise_workers_alive") == 2


def test_readyz_reports_an_unreachable_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with WorkerBeat("probe-host:2"):
        response = Client().get("/readyz")
    assert response.status_code == 503
    check = response.json()["checks"]["channel_layer"]
    assert check["ok"] is False and "ConnectionError" in check["detail"]


def test_metrics_refused_from_elsewhere_without_the_token(settings: Any) -> None:
    settings.STEPWISE_METRICS_TOKEN = ""
    refused = Client(REMOTE_ADDR="203.0.113.9").get("/metrics")
    assert refused.status_code == 403
    assert b"STEPWISE_METRICS_TOKEN" in refused.content
    settings.STEPWISE_METRICS_TOKEN = "s3cret-token"
    assert Client(REMOTE_ADDR="203.0.113.9").get(
        "/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert Client(REMOTE_ADDR="203.0.113.9").get(
        "/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    settings.STEPWISE_METRICS_ALLOW = ["203.0.113.0/24"]
    settings.STEPWISE_METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 200


def test_metrics_show_runs_reviews_workers_and_decisions(
    make_review: Any, make_run: Any, client_as: Any, start_paused: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.utils import timezone

    make_run(status=Run.Status.QUEUED)
    make_review(due_at=timezone.now() - timezone.timedelta(minutes=5))
    review = start_paused()
    before = Client().get("/metrics").content.decode()  # loopback: allowed by default
    decided = sample_or_zero(before, "stepwise_decisions_total", action="approve")
    with WorkerBeat("metrics-host:7"):
        client = client_as("reviewer")
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/reviews/{review.pk}/decide/", {"action": "approve"})
        assert response.status_code == 303
        assert ReviewRequest.objects.get(pk=review.pk).status == "decided"
        text = Client().get("/metrics").content.decode()
    assert sample(text, "stepwise_runs", status="queued") >= 1
    assert sample(text, "stepwise_reviews_open") >= 1
    assert sample(text, "stepwise_reviews_overdue") == 1
    assert sample(text, "stepwise_workers_alive") == 1
    assert sample(text, "stepwise_worker_heartbeat_age_seconds", worker="metrics-host:7") < 5
    assert sample(text, "stepwise_task_queue_depth", queue="default") >= 1
    assert sample(text, "stepwise_decisions_total", action="approve") == decided + 1
    assert "stepwise_superstep_seconds_bucket" in text
    assert "stepwise_runs_needing_ops 0.0" in text


def sample_or_zero(text: str, name: str, **labels: str) -> float:
    try:
        return sample(text, name, **labels)
    except AssertionError:
        return 0.0


def test_ops_console_lists_runs_that_need_ops_first(make_run: Any, client_as: Any) -> None:
    older = make_run(status=Run.Status.STALLED)
    gave_up = make_run(status=Run.Status.FAILED, error="needs ops: stalled again")
    Event.objects.create(kind=NEEDS_OPS, thread=gave_up.thread, run=gave_up)
    page = client_as("ops").get("/ops/").content.decode()
    assert page.index(f"run {gave_up.pk}<") < page.index(f"run {older.pk}<")
    assert "Needs ops" in page


def test_a_pruned_thread_page_still_shows_its_history(
    start_paused: Any, client_as: Any, tmp_path: Any,
) -> None:
    from orchestration.runtime.models import Thread
    from orchestration.runtime.savers import DjangoCheckpointSaver

    review = start_paused()
    thread = review.thread
    ReviewRequest.objects.filter(pk=review.pk).update(status="cancelled")
    Thread.objects.filter(pk=thread.pk).update(status="done")
    DjangoCheckpointSaver().delete_thread(thread.thread_id)  # what prune_threads does
    response = client_as("viewer").get(f"/threads/{thread.thread_id}/")
    assert response.status_code == 200


def test_json_log_lines_carry_the_ids(capsys: Any) -> None:
    import logging

    from pythonjsonlogger.json import JsonFormatter

    from orchestration.runtime.logcontext import ContextFilter, log_context

    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
    log = logging.getLogger("stepwise.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        with log_context(run_id=7, thread_id="t-1"):
            log.warning("hello %s", "there")
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "hello there"
    assert (lines[0]["run_id"], lines[0]["thread_id"], lines[0]["review_id"]) == (7, "t-1", None)
    assert lines[1]["run_id"] is None


def test_request_log_lines_name_the_review(client_as: Any, caplog: Any) -> None:
    from orchestration.runtime.logcontext import ContextFilter

    caplog.handler.addFilter(ContextFilter())
    response = client_as("reviewer").get("/reviews/987654/")
    assert response.status_code == 404
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records and records[-1].review_id == 987654


def _handlers_reached(name: str, caplog: Any) -> list[Any]:
    """The handlers (other than pytest's own) a record logged on `name` goes through."""
    import logging

    logger: logging.Logger | None = logging.getLogger(name)
    handlers: list[Any] = []
    while logger is not None:
        handlers += [h for h in logger.handlers if h is not caplog.handler
                     and type(h).__module__.split(".")[0] != "_pytest"]
        if not logger.propagate:
            break
        logger = logger.parent
    return handlers


def test_each_log_record_is_written_once(caplog: Any) -> None:
    # QA: with DEBUG on, every request line came out twice (Django's own "django" console
    # handler, then the root's); one handler, the root's, for each logger a request uses
    for name in ("django.request", "django.server", "django.channels.server", "approvals"):
        assert len(_handlers_reached(name, caplog)) == 1, name


def test_an_expected_403_is_one_warning_line_without_a_traceback(
        client_as: Any, caplog: Any) -> None:
    import logging

    response = client_as("reviewer").get("/ops/")
    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING and "/ops/" in records[0].getMessage()
    (console,) = _handlers_reached("django.request", caplog)
    line = console.format(records[0])
    assert "Traceback" not in line and len(line.splitlines()) == 1


def test_favicon_is_served_without_a_session_and_pages_link_an_icon() -> None:
    """Browsers ask for /favicon.ico on every session: it was a 404 (a failed request per
    page and a line in the server log). WhiteNoise serves it before the login requirement."""
    client = Client()
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    body = b"".join(response.streaming_content)
    assert body[:4] == b"\x00\x00\x01\x00" and b"PNG" in body[:40]  # an icon holding a PNG
    assert "sessionid" not in response.cookies
    login = client.get("/accounts/login/").content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', login)
    assert icon, login[:800]
    svg = client.get(icon.group(1))
    assert svg.status_code == 200
    assert b"<svg" in b"".join(svg.streaming_content)
