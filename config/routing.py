"""Websocket routes. Websockets only push; every decision is an ordinary POST."""

from django.urls import path, re_path

from approvals import consumers

websocket_urlpatterns: list = [
    path("ws/inbox/", consumers.InboxConsumer.as_asgi()),
    path("ws/ops/", consumers.OpsConsumer.as_asgi()),
    path("ws/threads/<str:thread_id>/", consumers.ThreadConsumer.as_asgi()),
    # last: every other path is refused with a close code, not an exception
    re_path(r"", consumers.NotFoundConsumer.as_asgi()),
]
