"""STEPWISE_REQUEST_THREADS: a server process runs at most that many requests' views at once;
the others wait in the event loop (config/asgi.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import ThreadSensitiveContext
from django.core.signals import request_finished, request_started
from django.http import HttpResponse, StreamingHttpResponse
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



def _scope(path: str = "/") -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"localhost")],
            "client": ("127.0.0.1", 5000), "server": ("localhost", 80)}


async def _serve(handler: OneHopASGIHandler, **scope: object) -> tuple[int, bytes]:
    """One GET through the handler's ASGI entry point, as uvicorn calls it (`scope`: what
    differs from `_scope()`)."""
    sent: list[dict] = []
    bodies = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict:
        if bodies:
            return bodies.pop()
        await asyncio.Event().wait()  # the client stays connected until the response is sent
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    await handler({**_scope(), **scope}, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


class ThreadRecordingHandler(CountingHandler):
    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def get_response(self, request):  # type: ignore[no-untyped-def]
        self.threads.add(threading.get_ident())
        return super().get_response(request)


@override_settings(ALLOWED_HOSTS=["localhost"])
def test_requests_one_after_another_reuse_one_thread() -> None:
    handler = ThreadRecordingHandler()
    for _ in range(5):
        assert asyncio.run(_serve(handler)) == (200, b"ok")
    assert len(handler.threads) == 1
    assert threading.get_ident() not in handler.threads  # never the event loop's thread
    assert len(handler.idle_threads) == 1


@override_settings(ALLOWED_HOSTS=["localhost"], STEPWISE_REQUEST_THREADS=0)
def test_requests_at_once_each_get_their_own_thread_and_all_are_kept() -> None:
    handler = ThreadRecordingHandler()

    async def at_once() -> list[tuple[int, bytes]]:
        return list(await asyncio.gather(*(_serve(handler) for _ in range(4))))

    assert asyncio.run(at_once()) == [(200, b"ok")] * 4
    assert handler.most == 4 and len(handler.threads) == 4
    assert len(handler.idle_threads) == 4
    asyncio.run(at_once())
    assert len(handler.threads) == 4  # the second wave ran on the same four threads


class CountingExecutor(ThreadPoolExecutor):
    """A request thread that counts the calls handed to it (each one a hop)."""

    def __init__(self) -> None:
        super().__init__(1)
        self.hops = 0

    def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.hops += 1
        return super().submit(*args, **kwargs)


def _events_of_one_request(response: HttpResponse | StreamingHttpResponse) -> list[str]:
    handler = OneHopASGIHandler()
    thread = CountingExecutor()
    handler.idle_threads.append(thread)
    events: list[str] = []
    view_thread: list[int] = []

    def started(**_: object) -> None:
        events.append(f"started{'' if threading.get_ident() == view_thread[0] else ' elsewhere'}")

    def finished(**_: object) -> None:
        events.append(f"finished{'' if threading.get_ident() == view_thread[0] else ' elsewhere'}")

    def get_response(request):  # type: ignore[no-untyped-def]
        events.append("view")
        return response

    handler.get_response = get_response  # type: ignore[method-assign]
    view_thread.append(thread.submit(threading.get_ident).result())
    thread.hops = 0
    request_started.connect(started)
    request_finished.connect(finished)
    try:
        async def serve() -> None:
            bodies = [{"type": "http.request", "body": b"", "more_body": False}]

            async def receive() -> dict:
                if bodies:
                    return bodies.pop()
                await asyncio.Event().wait()
                raise AssertionError("unreachable")

            async def send(message: dict) -> None:
                events.append(message["type"])

            await handler(_scope(), receive, send)

        asyncio.run(serve())
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    events.append(f"hops={thread.hops}")
    return events


@override_settings(ALLOWED_HOSTS=["localhost"])
def test_a_request_is_one_hop_with_its_signals_around_the_view_in_its_thread() -> None:
    assert _events_of_one_request(HttpResponse("ok")) == [
        "started", "view", "finished", "http.response.start", "http.response.body", "hops=1"]


@override_settings(ALLOWED_HOSTS=["localhost"])
def test_a_streaming_response_is_closed_after_it_was_sent() -> None:
    async def parts():  # type: ignore[no-untyped-def]
        yield b"a"
        yield b"b"

    events = _events_of_one_request(StreamingHttpResponse(parts()))
    assert events[:3] == ["started", "view", "http.response.start"]
    assert events[-2:] == ["finished", "hops=2"]


class ConnectionRecordingHandler(OneHopASGIHandler):
    """The real handler, whose view runs a query and notes the SQLite connection it used."""

    def __init__(self) -> None:
        super().__init__()
        self.raw_connections: list[int] = []

    def get_response(self, request):  # type: ignore[no-untyped-def]
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        self.raw_connections.append(id(connection.connection))
        return HttpResponse("ok")


@pytest.mark.django_db(transaction=True)
@override_settings(ALLOWED_HOSTS=["localhost"])
def test_on_sqlite_a_request_thread_keeps_its_connection_for_the_next_request() -> None:
    """Opening a SQLite connection costs ~0.8 ms of CPU and loses its prepared statements: the
    reused request thread keeps it (SQLITE_CONN_MAX_AGE) across Django's end-of-request close."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's connection age (PostgreSQL connections come from the pool)")
    handler = ConnectionRecordingHandler()
    for _ in range(3):
        assert asyncio.run(_serve(handler)) == (200, b"ok")
    assert len(handler.raw_connections) == 3
    assert len(set(handler.raw_connections)) == 1


class LoopRecordingHandler(OneHopASGIHandler):
    """A view that does what live updates do (`async_to_sync` from the request's thread, and
    back into it with `sync_to_async`) and reads the script prefix the event loop set."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, object] = {}

    def get_response(self, request):  # type: ignore[no-untyped-def]
        from asgiref.sync import async_to_sync, sync_to_async
        from django.urls import get_script_prefix

        self.seen["view thread"] = threading.get_ident()
        self.seen["prefix"] = get_script_prefix()

        async def on_the_loop() -> None:
            self.seen["loop"] = asyncio.get_running_loop()
            self.seen["back in"] = await sync_to_async(threading.get_ident)()

        async_to_sync(on_the_loop)()
        return HttpResponse("ok")


@override_settings(ALLOWED_HOSTS=["localhost"])
def test_the_view_reaches_the_serving_loop_and_comes_back_to_its_thread() -> None:
    handler = LoopRecordingHandler()

    async def serve() -> tuple[asyncio.AbstractEventLoop, tuple[int, bytes]]:
        answer = await _serve(handler, root_path="/stepwise")
        return asyncio.get_running_loop(), answer

    loop, answer = asyncio.run(serve())
    assert answer == (200, b"ok")
    # async_to_sync ran its coroutine on the server's loop (Channels' connections live
    # there), not on a new loop in a new thread, and sync_to_async came back to the view's
    assert handler.seen["loop"] is loop
    assert handler.seen["back in"] == handler.seen["view thread"]
    assert handler.seen["prefix"] == "/stepwise/"  # set by the event loop, seen by the view
