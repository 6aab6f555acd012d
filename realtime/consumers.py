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
NOTHING = object()  # no resync requested


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
        self.outbox_bytes = 0
        self.held_back: list[tuple[int, str]] | None = None
        self.closing = False
        self.resync_from: object = NOTHING
        self.resyncs: asyncio.Task | None = None
        loop = asyncio.get_running_loop()
        self.last_resync = loop.time()
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
        self.last_resync = loop.time()

    async def disconnect(self, code) -> None:
        self._leave_feed()
        for task in (self.writer, self.resyncs):
            if task is not None:
                task.cancel()

    def _leave_feed(self) -> None:
        self.closing = True
        if self.feed is not None:
            registry().unsubscribe(self.event_id, self)
            self.feed = None

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if not text_data or len(text_data) > MAX_CLIENT_MESSAGE or self.closing:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("type") != "resync":
            return
        # Never awaited here: a flood of requests must not queue up renders (nor the
        # disconnect behind them). Requests coalesce into one catch-up from the oldest
        # version asked for, at most one a second, measured from the end of the last.
        version = _parse_version(message.get("version"))
        if self.resync_from is NOTHING:
            self.resync_from = version
        elif self.resync_from is not None:
            self.resync_from = None if version is None else min(self.resync_from, version)
        if self.resyncs is None or self.resyncs.done():
            self.resyncs = asyncio.create_task(self._run_resyncs())

    async def _run_resyncs(self) -> None:
        loop = asyncio.get_running_loop()
        while self.resync_from is not NOTHING and not self.closing:
            await asyncio.sleep(max(0.0, self.last_resync + RESYNC_INTERVAL - loop.time()))
            since, self.resync_from = self.resync_from, NOTHING
            await self._catch_up(since)
            self.last_resync = loop.time()

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
        if self.outbox.qsize() and (
            self.outbox.qsize() >= settings.REALTIME_SOCKET_QUEUE
            or self.outbox_bytes + len(frame) > settings.REALTIME_SOCKET_QUEUE_BYTES
        ):
            # Too slow to keep up: close so it reconnects from its version and catches up.
            self._leave_feed()
            self.closer = asyncio.create_task(self.close(code=TRY_AGAIN_LATER))
            return
        self.outbox_bytes += len(frame)
        self.outbox.put_nowait(frame)

    async def _catch_up(self, since: int | None) -> None:
        """Sends what the viewer missed, then the deltas that arrived meanwhile."""
        self.held_back = self.held_back if self.held_back is not None else []
        try:
            # A few at a time per process: the rest wait, then mostly find the frame cached.
            async with registry().catch_up_slots:
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
            self.outbox_bytes -= len(frame)
            await self.send(text_data=frame)


class NoSuchSocket(AsyncWebsocketConsumer):
    """Any other WebSocket path: refused at the handshake (403) rather than a server error."""

    channel_layer_alias = "__no_layer_per_socket__"

    async def connect(self) -> None:
        await self.close()
