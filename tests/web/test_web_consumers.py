"""Live pages: websocket consumers push an htmx out-of-band fragment for each event."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import redis
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from config.routing import websocket_urlpatterns
from orchestration.runtime.events import publish
from orchestration.runtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)
app = URLRouter(websocket_urlpatterns)


async def connect(path: str, user) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(app, path)
    communicator.scope["user"] = user
    connected, code = await communicator.connect()
    return communicator, connected, code


@pytest.fixture
def user_of(make_user):
    return lambda role: make_user(role)


@pytest.fixture
def in_memory_layer(settings):
    """The default SQLite profile: a per-process channel layer, so consumers poll `Event`."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def redis_layer(settings):
    """The scaled-out profile: Redis carries events between processes (own key prefix)."""
    url = "redis://127.0.0.1:6379/15"
    redis.Redis.from_url(url).ping()  # Redis runs on this machine type; bin/test starts it
    prefix = f"stepwise-test-{uuid.uuid4().hex}"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": prefix},
        }
    }
    return url, prefix


SEND_FROM_ANOTHER_PROCESS = """
import asyncio, sys
from channels_redis.core import RedisChannelLayer
layer = RedisChannelLayer(hosts=[sys.argv[1]], prefix=sys.argv[2])
message = {"type": "stepwise.event", "event_id": int(sys.argv[3]), "kind": "run_failed"}
asyncio.run(layer.group_send("ops", message))
"""


async def test_anonymous_user_cannot_open_a_live_socket():
    _, connected, code = await connect("/ws/inbox/", AnonymousUser())
    assert (connected, code) == (False, 4403)


async def test_reviewer_cannot_open_the_ops_socket(user_of):
    user = await database_sync_to_async(user_of)("reviewer")
    _, connected, _ = await connect("/ws/ops/", user)
    assert not connected


async def test_thread_socket_for_unknown_thread_is_refused(user_of):
    user = await database_sync_to_async(user_of)("viewer")
    _, connected, _ = await connect("/ws/threads/nope/", user)
    assert not connected


async def test_published_event_reaches_the_inbox_as_an_oob_swap(user_of, make_thread):
    user = await database_sync_to_async(user_of)("viewer")
    thread = await database_sync_to_async(make_thread)()
    communicator, connected, _ = await connect("/ws/inbox/", user)
    assert connected
    event = await database_sync_to_async(publish)("review_requested", thread=thread)
    html = await communicator.receive_from(timeout=3)
    assert 'id="live-status"' in html and 'hx-swap-oob="true"' in html
    assert f'data-event-id="{event.pk}"' in html
    await communicator.disconnect()


async def test_event_written_by_another_process_is_found_by_polling(
    user_of, make_thread, in_memory_layer
):
    """No channel message at all (as from a worker process without Redis): only the row."""
    user = await database_sync_to_async(user_of)("ops")
    thread = await database_sync_to_async(make_thread)()
    communicator, connected, _ = await connect("/ws/ops/", user)
    assert connected
    event = await database_sync_to_async(Event.objects.create)(kind="run_failed", thread=thread)
    html = await communicator.receive_from(timeout=3)
    assert f'data-event-id="{event.pk}"' in html
    assert "run failed" in html
    await communicator.disconnect()


async def test_thread_socket_ignores_other_threads_events(user_of, make_thread, in_memory_layer):
    user = await database_sync_to_async(user_of)("viewer")
    mine = await database_sync_to_async(make_thread)()
    other = await database_sync_to_async(make_thread)()
    communicator, connected, _ = await connect(f"/ws/threads/{mine.thread_id}/", user)
    assert connected
    await database_sync_to_async(Event.objects.create)(kind="run_progress", thread=other)
    assert await communicator.receive_nothing(timeout=1.2)
    event = await database_sync_to_async(Event.objects.create)(kind="run_progress", thread=mine)
    html = await communicator.receive_from(timeout=3)
    assert f'data-event-id="{event.pk}"' in html
    await communicator.disconnect()


async def test_heartbeat_events_do_not_refresh_the_inbox(user_of, make_thread):
    user = await database_sync_to_async(user_of)("viewer")
    thread = await database_sync_to_async(make_thread)()
    communicator, connected, _ = await connect("/ws/inbox/", user)
    assert connected
    await database_sync_to_async(publish)("run_progress", thread=thread)
    assert await communicator.receive_nothing(timeout=1.2)
    await communicator.disconnect()


async def test_messages_from_the_browser_are_ignored(user_of):
    user = await database_sync_to_async(user_of)("reviewer")
    communicator, connected, _ = await connect("/ws/inbox/", user)
    assert connected
    await communicator.send_to(text_data='{"action": "approve", "review": 1}')
    assert await communicator.receive_nothing(timeout=0.8)
    await communicator.disconnect()


async def test_event_sent_by_another_process_arrives_through_redis(user_of, redis_layer):
    url, prefix = redis_layer
    user = await database_sync_to_async(user_of)("ops")
    communicator, connected, _ = await connect("/ws/ops/", user)
    assert connected
    event_id = 10**9  # no such row: only the Redis message can have carried it
    subprocess.run(
        [sys.executable, "-c", SEND_FROM_ANOTHER_PROCESS, url, prefix, str(event_id)],
        check=True, timeout=30,
    )
    html = await communicator.receive_from(timeout=5)
    assert f'data-event-id="{event_id}"' in html and "run failed" in html
    await communicator.disconnect()


async def test_event_between_render_and_connect_is_pushed_on_connect(
    user_of, make_thread, in_memory_layer
):
    """A run that finishes while its page loads: the page says when it was rendered, and the
    socket pushes what happened since, instead of waiting for an event that never comes."""
    import time

    user = await database_sync_to_async(user_of)("viewer")
    thread = await database_sync_to_async(make_thread)()
    rendered = int(time.time())
    event = await database_sync_to_async(publish)("run_succeeded", thread=thread)
    path = f"/ws/threads/{thread.thread_id}/"
    communicator, connected, _ = await connect(f"{path}?since={rendered}", user)
    assert connected
    html = await communicator.receive_from(timeout=3)
    assert f'data-event-id="{event.pk}"' in html
    await communicator.disconnect()
    # without `since` (or with a page rendered later), nothing old is pushed
    late = int(time.time()) + 60
    for query in ("", f"?since={late}", "?since=junk"):
        communicator, connected, _ = await connect(f"{path}{query}", user)
        assert connected
        assert await communicator.receive_nothing(timeout=0.7)
        await communicator.disconnect()
