"""A webhook attempt ends within STEPWISE_WEBHOOK_TIMEOUT_SECONDS, however the receiver
answers (`approvals.api.webhook_post`).

In an ops trial a receiver that answered `200 OK` and then sent a byte every 3 s held two task
workers for 78 s: httpx's timeout bounds each read, and every read got its byte in time. These
receivers trickle for 30 s; an attempt under a 1 s limit must be back long before that.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from approvals.api import webhook_post
from approvals.api.models import WebhookDelivery, WebhookEndpoint
from approvals.api.webhooks import deliver_webhook, emit

TRICKLE_SECONDS = 30.0


class _Trickle(socketserver.BaseRequestHandler):
    """Reads the request, sends `self.server.opening`, then one byte every 0.2 s."""

    def handle(self) -> None:
        self.request.settimeout(5)
        self.request.recv(65536)
        until = time.monotonic() + TRICKLE_SECONDS
        try:
            self.request.sendall(self.server.opening)  # type: ignore[attr-defined]
            while time.monotonic() < until and not self.server.done.is_set():  # type: ignore[attr-defined]
                self.request.sendall(self.server.drip)  # type: ignore[attr-defined]
                time.sleep(0.2)
        except OSError:
            pass  # the client hung up: what a bounded attempt does


def _serve(opening: bytes, drip: bytes) -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    server.opening, server.drip = opening, drip  # type: ignore[attr-defined]
    server.done = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.done.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


@pytest.fixture
def trickled_headers() -> Iterator[str]:
    yield from _serve(b"HTTP/1.1 200 OK\r\n", b"X")


@pytest.fixture
def trickled_body() -> Iterator[str]:
    yield from _serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", b"x")


def test_trickled_headers_are_no_answer_within_the_limit(trickled_headers: str) -> None:
    answer = webhook_post.post(trickled_headers, b"{}", {}, limit=1.0)
    assert answer.status_code is None
    assert "no answer within 1 s" in answer.error
    assert answer.duration_ms < 10_000, answer  # the receiver would go on for 30 s


def test_an_answered_status_counts_and_its_trickled_body_is_not_waited_for(
    trickled_body: str,
) -> None:
    answer = webhook_post.post(trickled_body, b"{}", {}, limit=1.0)
    assert answer.status_code == 200 and answer.error == ""
    assert answer.excerpt and set(answer.excerpt) == {"x"} and len(answer.excerpt) < 500
    assert answer.duration_ms < 10_000, answer


def test_a_refused_connection_is_an_error_not_an_exception() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answer = webhook_post.post(f"http://127.0.0.1:{port}/hook", b"{}", {}, limit=2.0)
    assert answer.status_code is None and answer.error.startswith("ConnectError")


@pytest.mark.django_db
def test_a_delivery_to_a_trickling_receiver_is_recorded_failed_and_retried(
    settings, trickled_headers: str
) -> None:
    settings.STEPWISE_WEBHOOK_TIMEOUT_SECONDS = 1.0
    endpoint = WebhookEndpoint.objects.create(url=trickled_headers, secret="s",
                                              event_types=["review.requested"])
    (delivery,) = emit("review.requested", {"review": {"id": 1}}, endpoints=[endpoint])
    result = deliver_webhook.call(delivery.pk)
    assert result["outcome"] == "retrying", result
    delivery.refresh_from_db()
    (attempt,) = delivery.attempt_log.all()
    assert attempt.status_code is None and "no answer within 1 s" in attempt.error
    assert attempt.duration_ms < 10_000
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.next_attempt_at
