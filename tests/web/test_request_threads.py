"""STEPWISE_REQUEST_THREADS: a server process runs at most that many requests' views at once;
the others wait in the event loop (config/asgi.py)."""

from __future__ import annotations

import asyncio
import threading
import time

from asgiref.sync import ThreadSensitiveContext
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from config.asgi import OneHopASGIHandler


class CountingHandler(OneHopASGIHandler):
    """The real handler, whose synchronous response counts how many run at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.running = self.most = 0

    def get_response(self, request):  # type: ignore[no-untyped-def]
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)  # long enough for every request to be waiting for a thread
        with self.lock:
            self.running -= 1
        return HttpResponse("ok")


def _serve_at_once(handler: CountingHandler, n: int) -> list[int]:
    async def one() -> int:
        async with ThreadSensitiveContext():  # as ASGIHandler.__call__: a thread per request
            response = await handler.get_response_async(RequestFactory().get("/"))
        return response.status_code

    async def all_at_once() -> list[int]:
        return list(await asyncio.gather(*(one() for _ in range(n))))

    return asyncio.run(all_at_once())


@override_settings(STEPWISE_REQUEST_THREADS=2)
def test_at_most_the_configured_number_of_requests_run_at_once() -> None:
    handler = CountingHandler()
    assert _serve_at_once(handler, 8) == [200] * 8
    assert handler.most == 2


@override_settings(STEPWISE_REQUEST_THREADS=0)
def test_zero_means_no_limit() -> None:
    handler = CountingHandler()
    assert _serve_at_once(handler, 6) == [200] * 6
    assert handler.most > 2
