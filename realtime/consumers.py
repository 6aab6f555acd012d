"""The seat-map WebSocket: /ws/events/<event_id>/?v=<version the page was rendered at>."""

import asyncio
import enum
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User

from events.models import Event
from seats.parsing import parse_id

from .catchup import catch_up_frame
from .db import in_worker_thread
from .feed import EventFeed, FeedUnavailable, registry
from .frames import FrameKind

logger = logging.getLogger(__name__)

# Close code the htmx ws extension reconnects on ("try again later").
TRY_AGAIN_LATER = 1013
MAX_CLIENT_MESSAGE = 1024
RESYNC_INTERVAL = 1.0  # seconds


class Resync(enum.Enum):
    NONE_ASKED = enum.auto()


# What a viewer asked to be brought up from: a version, None (from nothing: the whole map),
# or no request pending.
ResyncFrom = int | None | Resync


def _is_visible(event_id: int, user: User | AnonymousUser | None) -> bool:
    return Event.objects.visible_to(user or AnonymousUser()).filter(pk=event_id).exists()


def _parse_version(raw: object) -> int | None:
    return parse_id(raw, minimum=0)


# channels ships no type hints, so its consumer class is Any to mypy: subclassing it is
# allowed here, line by line, rather than for whole modules.
class SeatMapConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Sends a viewer every committed seat change of one event, in version order.

    No per-socket channel: the process's EventFeed hands this socket the shared frame.
    While this process cannot subscribe to the channel layer (Redis down), sockets are
    refused, and open ones are closed with 1013; browsers reconnect and catch up.
    """

    channel_layer_alias = "__no_layer_per_socket__"

    async def connect(self) -> None:
        self.feed: EventFeed | None = None
        self.writer: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.outbox_bytes = 0
        self.held_back: list[tuple[int, str]] | None = None
        self.closing = False
        self.resync_from: ResyncFrom = Resync.NONE_ASKED
        self.resyncs: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self.last_resync = loop.time()
        event_id = int(self.scope["url_route"]["kwargs"]["event_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        since = _parse_version((query.get("v") or [""])[0])
        visible = await in_worker_thread(_is_visible)(event_id, self.scope.get("user"))
        if not visible:
            await self.close()  # refuses the handshake (HTTP 403)
            return
        self.event_id = event_id
        # Subscribe before reading state: nothing committed from here on can be missed.
        self.held_back = []
        try:
            self.feed = await registry().subscribe(event_id, self)
        except FeedUnavailable:
            # Refused (the browser sees 1006 and retries): accepting would tell the page
            # live updates had resumed.
            self.closing = True
            await self.close()
            return
        await self.accept()
        self.writer = asyncio.create_task(self._write())
        await self._catch_up(since)
        self.last_resync = loop.time()

    async def disconnect(self, code: int) -> None:
        self._leave_feed()
        for task in (self.writer, self.resyncs):
            if task is not None:
                task.cancel()

    def _leave_feed(self) -> None:
        self.closing = True
        if self.feed is not None:
            registry().unsubscribe(self.feed, self)
            self.feed = None

    def _close_to_reconnect(self) -> None:
        """Closes with 1013: the browser says live updates are paused, reconnects from the
        version it reached and catches up."""
        self._leave_feed()
        for task in (self.writer, self.resyncs):
            if task is not None:
                task.cancel()
        self.closer = asyncio.create_task(self.close(code=TRY_AGAIN_LATER))

    def feed_lost(self) -> None:
        """Called by the feed when it stopped receiving changes (the channel layer went
        away); it has already dropped this socket."""
        if self.feed is None or self.closing:
            return  # still connecting: the subscription raises FeedUnavailable
        self.feed = None
        self._close_to_reconnect()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not text_data or len(text_data) > MAX_CLIENT_MESSAGE or self.closing:
            return
        try:
            message: Any = json.loads(text_data)
        except (ValueError, RecursionError):
            # RecursionError: deeply nested JSON ("[[[[…"), which the parser cannot finish.
            return
        if not isinstance(message, dict) or message.get("type") != "resync":
            return
        # Never awaited here: a flood of requests must not queue up renders (nor the
        # disconnect behind them). Requests coalesce into one catch-up from the oldest
        # version asked for, at most one a second, measured from the end of the last.
        version = _parse_version(message.get("version"))
        if self.resync_from is Resync.NONE_ASKED:
            self.resync_from = version
        elif self.resync_from is not None:
            self.resync_from = None if version is None else min(self.resync_from, version)
        if self.resyncs is None or self.resyncs.done():
            self.resyncs = asyncio.create_task(self._run_resyncs())

    def _resync_asked(self) -> bool:
        return self.resync_from is not Resync.NONE_ASKED

    async def _run_resyncs(self) -> None:
        loop = asyncio.get_running_loop()
        while self._resync_asked() and not self.closing:
            await asyncio.sleep(max(0.0, self.last_resync + RESYNC_INTERVAL - loop.time()))
            since, self.resync_from = self.resync_from, Resync.NONE_ASKED
            assert since is not Resync.NONE_ASKED
            await self._catch_up(since)
            self.last_resync = loop.time()

    def deliver(self, *, kind: FrameKind, version: int, frame: str) -> None:
        """Called by the feed for every frame; never blocks."""
        if self.closing:
            return
        if self.held_back is not None and kind == FrameKind.DELTA:
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
            self._close_to_reconnect()
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
            self._close_to_reconnect()
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


class NoSuchSocket(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Any other WebSocket path: refused at the handshake (403) rather than a server error."""

    channel_layer_alias = "__no_layer_per_socket__"

    async def connect(self) -> None:
        await self.close()
