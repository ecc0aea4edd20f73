"""ASGI entry point: HTTP through Django, websockets through Channels (served by uvicorn,
granian or Daphne: bin/serve-web)."""

import asyncio
import contextvars
import functools
import gc
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import django
from asgiref.sync import SyncToAsync, ThreadSensitiveContext, _restore_context, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


# The request thread a request borrowed (OneHopASGIHandler.__call__), for its one hop.
_request_thread: contextvars.ContextVar[ThreadPoolExecutor] = contextvars.ContextVar(
    "stepwise_request_thread")


class RequestProcessed(Exception):
    """The response was sent: ends `handle`'s task group (Django defines it per request)."""


class OneHopASGIHandler(ASGIHandler):
    """Django's ASGI handler with the middleware chain run as one synchronous call in the
    request's thread, as under WSGI.

    Every page and API view of Stepwise is synchronous (the ORM), and most middlewares
    (Django's own are `MiddlewareMixin`s) are sync code. In the default async chain each of
    their `process_request`/`process_response`/`process_view` hooks is its own
    `sync_to_async` hop into the request's thread, and a sync-only middleware in the middle
    (WhiteNoise) hops back with `async_to_sync`: about eighteen thread hops per request,
    measured as several CPU-ms of asgiref and event-loop work per request under load
    (bench/load). Here the whole chain is one hop, and runs exactly as in the test client.
    Websockets are not affected (Channels serves them).

    Django also starts a new thread for every request (a fresh single-thread executor per
    request context) and joins it afterwards; with it went the thread's database connection
    object, so every request built a new one. Here a request borrows an idle request thread
    and gives it back when its response is sent, as a threaded WSGI server reuses its
    threads: still one thread per request at a time, so `thread_sensitive` code behaves as
    before.

    And Django hops into that thread three times per request: for the `request_started`
    receivers, for the response, and for `response.close()` (the `request_finished`
    receivers: the thread's database connection goes back). Here the first and the last run
    in the response's hop, before and after the middleware chain, as under WSGI; a
    streaming response (a file, a stream) is still closed after it was sent.

    That one hop is `_hop`, not `sync_to_async`: asgiref's picks the thread per call, shields
    the call and copies the whole context into the thread before it and back after it
    (`_restore_context`, every context variable of the request each time). The thread is
    known here, and nothing after the view (sending the response) reads what it set, so the
    context is copied in only. Like `sync_to_async` it tells the thread which event loop is
    the main one, so `async_to_sync` inside the view (live updates to Channels) runs its
    coroutine on this loop, as before."""

    # idle request threads kept for the next requests (more are started when more requests
    # are in flight, and shut down when they come back to a full shelf)
    IDLE_THREADS_KEPT = 16

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        from django.conf import settings

        # At most this many requests run their (synchronous) view at once; the rest wait
        # in the event loop. See STEPWISE_REQUEST_THREADS in config/settings.py.
        limit = settings.STEPWISE_REQUEST_THREADS
        self.slots = asyncio.Semaphore(limit) if limit > 0 else None
        self.idle_threads: list[ThreadPoolExecutor] = []

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # only the event loop's thread touches the shelf: no lock
        idle = self.idle_threads
        thread = idle.pop() if idle else ThreadPoolExecutor(1, thread_name_prefix="request")
        token = _request_thread.set(thread)
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            _request_thread.reset(token)
            # A request cancelled while its view still runs gives back a busy thread; the
            # next request that borrows it waits for that view to end, one at a time.
            if len(idle) < self.IDLE_THREADS_KEPT:
                idle.append(thread)
            else:
                thread.shutdown(wait=False)

    async def handle(self, scope, receive, send):  # type: ignore[no-untyped-def]
        """Django's `ASGIHandler.handle`, with the request's signals in the response's hop."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            set_script_prefix(get_script_prefix(scope))
            request, error_response = self.create_request(scope, body_file)
            if request is None:  # undecodable or too large: as Django answers it
                await signals.request_started.asend(sender=self.__class__, scope=scope)
                await self.send_response(error_response, send)
                await sync_to_async(error_response.close)()
                return

            response = None
            try:
                try:
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self.listen_for_disconnect(receive))
                        response = await self.run_get_response(request)
                        await self.send_response(response, send)
                        raise RequestProcessed
                except* (RequestProcessed, RequestAborted):
                    pass
            except BaseExceptionGroup as exception_group:
                if len(exception_group.exceptions) == 1:
                    raise exception_group.exceptions[0] from None
                raise

            if response is None:  # the client left first; the view may still be running
                await signals.request_finished.asend(sender=self.__class__)
            elif response.streaming:
                await sync_to_async(response.close)()

    def serve(self, request):  # type: ignore[no-untyped-def]
        """The request's whole synchronous part, in its thread."""
        signals.request_started.send(sender=self.__class__, scope=getattr(request, "scope", None))
        response = self.get_response(request)
        if not response.streaming:  # its content is bytes already: done with the database
            response.close()
        return response

    async def get_response_async(self, request):  # type: ignore[no-untyped-def]
        if self.slots is None:
            return await self._hop(request)
        async with self.slots:
            return await self._hop(request)

    async def _hop(self, request):  # type: ignore[no-untyped-def]
        """`serve(request)` in the request's thread, in a copy of the request's context."""
        thread = _request_thread.get(None)
        if thread is None:  # called without going through __call__ (tests)
            return await sync_to_async(self.serve, thread_sensitive=True)(request)
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task] = []  # what async_to_sync in the view runs on this loop
        call = functools.partial(self._serve_in_thread, loop, tasks, contextvars.copy_context(),
                                 request)
        try:
            return await loop.run_in_executor(thread, call)
        except asyncio.CancelledError:  # the client left: as sync_to_async, cancel those too
            for task in tasks:
                task.cancel()
            raise

    def _serve_in_thread(self, loop, tasks, context, request):  # type: ignore[no-untyped-def]
        # what SyncToAsync.thread_handler sets: async_to_sync in this thread runs its
        # coroutine on `loop`, and sync_to_async calls from that coroutine come back here
        local = SyncToAsync.threadlocal
        local.main_event_loop, local.main_event_loop_pid = loop, os.getpid()
        local.task_context = tasks
        return context.run(self._serve_in_context, context, request)

    def _serve_in_context(self, context, request):  # type: ignore[no-untyped-def]
        # Locals the event loop set (the script prefix) are re-homed to this thread, which
        # asgiref's Local asks of whoever moves a context between threads
        _restore_context(context)
        return self.serve(request)


django.setup(set_prefix=False)
django_asgi_app = OneHopASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry ready)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)


GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """The garbage collector, tuned for a long-lived server process.

    After start-up the app's own objects (Django, the URL resolver and template caches, the
    graphs: several hundred thousand) live as long as the process, yet with the default
    thresholds (700 allocations) a young collection ran about once per request and every
    hundred or so requests a full one walked them all again. Frozen, they are never scanned
    again; with a larger first threshold a request's short-lived garbage is collected every
    dozen or so requests instead of once or twice in each (bench/pages_cpu --asgi). Not in
    tests: there the frozen objects would be earlier tests' fixtures, never freed."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


if not settings.TESTING:
    tune_gc()
