"""Live updates: websockets that only push. Each page's consumer joins its channel groups and,
for every event, pushes an htmx out-of-band fragment (`#live-status`); the page's live regions
refresh themselves on `htmx:wsAfterMessage`. Decisions are never sent over the socket.

Without Redis the channel layer is per process, so a worker in another process cannot reach
us through it: the consumer then also polls `Event` rows (id above the last it saw).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Max, QuerySet
from django.http import Http404
from django.template.loader import render_to_string

from approvals.access import VIEW, VIEW_OPS, access_thread
from orchestration.runtime.events import THREAD_ONLY_KINDS, thread_group
from orchestration.runtime.models import Event

POLL_SECONDS = 0.5
SINCE_MARGIN_SECONDS = 2
# Heartbeats of a running run and what its nodes stream; a page refresh for each would be
# noise on the inbox and ops pages (the thread page listens to both). They are pushed to the
# thread's group only; polled from the Event table, they are left out here.
QUIET_KINDS = tuple(sorted(THREAD_ONLY_KINDS))
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def rendered_at(scope: dict[str, Any]) -> datetime | None:
    """When the page that opens this socket was rendered (`?since=<unix seconds>`), less a
    margin for clocks and rounding: pushing one event twice only refreshes a fragment."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        seconds = int(query.get("since", [""])[0])
    except ValueError:
        return None
    if not 0 < seconds < 2**33:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC) - timedelta(seconds=SINCE_MARGIN_SECONDS)


def layer_crosses_processes() -> bool:
    """False for the in-memory channel layer, which lives in one process: a worker elsewhere
    then reaches open pages only through the `Event` table, so consumers poll it."""
    backend = str(settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", ""))
    return not backend.endswith("InMemoryChannelLayer")


class LiveConsumer(AsyncWebsocketConsumer):
    """Base: authenticate, join groups, relay group messages and polled events."""

    poll_seconds = POLL_SECONDS
    quiet_kinds: tuple[str, ...] = QUIET_KINDS

    async def connect(self) -> None:
        self.last_event_id = 0
        self.joined: list[str] = []
        self.poller: asyncio.Task[None] | None = None
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await self.allowed(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.last_event_id = await database_sync_to_async(self._latest_event_id)()
        for group in self.live_groups():
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)
        await self.accept()
        # Events between the page's render and this connect would be lost otherwise (a run
        # that finishes while the page loads): the page says when it was rendered.
        since = rendered_at(self.scope)
        if since is not None:
            missed = await database_sync_to_async(self._newest_since)(since)
            if missed is not None:
                self.last_event_id = min(self.last_event_id, missed[0] - 1)
                await self.push(*missed)
        if not layer_crosses_processes():
            self.poller = asyncio.create_task(self._poll())

    async def disconnect(self, code: int) -> None:
        if self.poller is not None:
            self.poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.poller
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Websockets only push: anything a browser sends is ignored."""

    # --- what subclasses decide

    async def allowed(self, user: Any) -> bool:
        raise NotImplementedError

    def live_groups(self) -> list[str]:
        raise NotImplementedError

    def events(self) -> QuerySet[Event]:
        return Event.objects.exclude(kind__in=self.quiet_kinds)

    # --- delivery

    async def stepwise_event(self, message: dict[str, Any]) -> None:
        if message.get("kind") in self.quiet_kinds:
            return
        await self.push(int(message.get("event_id") or 0), str(message.get("kind") or ""))

    async def push(self, event_id: int, kind: str) -> None:
        if event_id and event_id <= self.last_event_id:
            return  # already pushed (the group and the poller can both deliver one event)
        self.last_event_id = max(self.last_event_id, event_id)
        html = render_to_string(
            "approvals/_live_status.html", {"kind": kind.replace("_", " "), "event_id": event_id}
        )
        await self.send(text_data=html)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            found = await database_sync_to_async(self._new_events)(self.last_event_id)
            if found is not None:
                await self.push(*found)

    def _latest_event_id(self) -> int:
        return Event.objects.aggregate(m=Max("id"))["m"] or 0

    def _newest_since(self, since: datetime) -> tuple[int, str] | None:
        newest = (
            self.events().filter(created_at__gte=since).order_by("-id")
            .values_list("id", "kind").first()
        )
        return (newest[0], newest[1]) if newest else None

    def _new_events(self, after: int) -> tuple[int, str] | None:
        newest = (
            self.events().filter(id__gt=after).order_by("-id").values_list("id", "kind").first()
        )
        return (newest[0], newest[1]) if newest else None


def _has_perm(user: Any, perm: str) -> bool:
    return bool(user.has_perm(perm))


class InboxConsumer(LiveConsumer):
    async def allowed(self, user: Any) -> bool:
        return await database_sync_to_async(_has_perm)(user, VIEW)

    def live_groups(self) -> list[str]:
        return ["inbox"]


class OpsConsumer(LiveConsumer):
    async def allowed(self, user: Any) -> bool:
        return await database_sync_to_async(_has_perm)(user, VIEW_OPS)

    def live_groups(self) -> list[str]:
        return ["ops"]


class ThreadConsumer(LiveConsumer):
    # the thread page shows each superstep as it lands
    quiet_kinds = ()

    async def allowed(self, user: Any) -> bool:
        self.thread_id = self.scope["url_route"]["kwargs"]["thread_id"]
        try:
            await database_sync_to_async(access_thread)(user, self.thread_id, for_update=False)
        except (PermissionDenied, Http404):
            return False
        return True

    def live_groups(self) -> list[str]:
        return [thread_group(self.thread_id)]

    def events(self) -> QuerySet[Event]:
        return super().events().filter(thread__thread_id=self.thread_id)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other websocket path: closed with 4404 (the router alone raises, which the server
    logs as an error and answers with a 500)."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_NOT_FOUND)
