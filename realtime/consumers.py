"""The seat-map WebSocket: /ws/events/<event_id>/?v=<version the page was rendered at>."""

import asyncio
import json
import logging
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from events.models import Event

from .catchup import catch_up_frame
from .db import in_worker_thread
from .feed import registry

logger = logging.getLogger(__name__)

# Close code the htmx ws extension reconnects on ("try again later").
TRY_AGAIN_LATER = 1013
MAX_CLIENT_MESSAGE = 1024
RESYNC_INTERVAL = 1.0  # seconds


def _visible_event_id(event_id: int, user) -> int | None:
    event = Event.objects.filter(pk=event_id).values("pk", "sale_state").first()
    if event is None:
        return None
    if event["sale_state"] == Event.SaleState.DRAFT and not getattr(user, "is_staff", False):
        return None
    return event["pk"]


def _parse_version(raw) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 19:
        return int(raw)
    return None


class SeatMapConsumer(AsyncWebsocketConsumer):
    """Sends a viewer every committed seat change of one event, in version order.

    No per-socket channel: the process's EventFeed hands this socket the shared frame.
    """

    channel_layer_alias = "__no_layer_per_socket__"

    async def connect(self) -> None:
        self.feed = None
        self.writer = None
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.held_back: list[tuple[int, str]] | None = None
        self.closing = False
        self.last_resync = float("-inf")
        self.pending_resync: asyncio.TimerHandle | None = None
        event_id = int(self.scope["url_route"]["kwargs"]["event_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        since = _parse_version((query.get("v") or [""])[0])
        visible = await in_worker_thread(_visible_event_id)(event_id, self.scope.get("user"))
        if visible is None:
            await self.close()  # refuses the handshake (HTTP 403)
            return
        self.event_id = event_id
        # Subscribe before reading state: nothing committed from here on can be missed.
        self.held_back = []
        self.feed = await registry().subscribe(event_id, self)
        await self.accept()
        self.writer = asyncio.create_task(self._write())
        await self._catch_up(since)

    async def disconnect(self, code) -> None:
        self._leave_feed()
        if self.writer is not None:
            self.writer.cancel()

    def _leave_feed(self) -> None:
        self.closing = True
        if self.pending_resync is not None:
            self.pending_resync.cancel()
        if self.feed is not None:
            registry().unsubscribe(self.event_id, self)
            self.feed = None

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if not text_data or len(text_data) > MAX_CLIENT_MESSAGE:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("type") != "resync":
            return
        # One catch-up at a time, and at most one a second: each reads and renders seats.
        version = _parse_version(message.get("version"))
        wait = self.last_resync + RESYNC_INTERVAL - asyncio.get_running_loop().time()
        if wait > 0:
            if self.pending_resync is None:
                self.pending_resync = asyncio.get_running_loop().call_later(
                    wait, self._resync_later, version
                )
            return
        if self.held_back is None:
            self.last_resync = asyncio.get_running_loop().time()
            await self._catch_up(version)

    def _resync_later(self, version: int | None) -> None:
        self.pending_resync = None
        if not self.closing and self.held_back is None:
            self.last_resync = asyncio.get_running_loop().time()
            self.resync_task = asyncio.create_task(self._catch_up(version))

    def deliver(self, *, kind: str, version: int, frame: str) -> None:
        """Called by the feed for every frame; never blocks."""
        if self.closing:
            return
        if self.held_back is not None and kind == "delta":
            self.held_back.append((version, frame))
            return
        self._enqueue(frame)

    def _enqueue(self, frame: str) -> None:
        if self.closing:
            return
        if self.outbox.qsize() >= settings.REALTIME_SOCKET_QUEUE:
            # Too slow to keep up: close so it reconnects from its version and catches up.
            self._leave_feed()
            self.closer = asyncio.create_task(self.close(code=TRY_AGAIN_LATER))
            return
        self.outbox.put_nowait(frame)

    async def _catch_up(self, since: int | None) -> None:
        """Sends what the viewer missed, then the deltas that arrived meanwhile."""
        self.held_back = self.held_back if self.held_back is not None else []
        try:
            version, frame = await in_worker_thread(catch_up_frame)(
                event_id=self.event_id, since=since
            )
        except Exception:
            logger.exception("Catch-up of event %s failed", self.event_id)
            self.held_back = None
            await self.close(code=TRY_AGAIN_LATER)
            return
        held, self.held_back = self.held_back, None
        if frame is not None:
            self._enqueue(frame)
        for delta_version, delta_frame in held:
            if delta_version > version:
                self._enqueue(delta_frame)

    async def _write(self) -> None:
        while True:
            frame = await self.outbox.get()
            await self.send(text_data=frame)
