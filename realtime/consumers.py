"""The seat-map WebSocket: /ws/events/<event_id>/?v=<version the page was rendered at>."""

import asyncio
import enum
import json
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User

from events.models import Event
from seats.parsing import parse_id

from .catchup import catch_up_frame
from .db import in_worker_thread
from .feed import EventFeed, FeedUnavailable, registry
from .frames import FrameKind
from .wire import DirectWriter, direct_writer

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

    No per-socket channel: the process's EventFeed hands this socket the shared frame, and
    it is written at once, in the feed's loop over its sockets, without a task switch. A
    socket whose connection cannot take it (its send buffer is full: a slow client) queues
    its frames in a task of its own, so it never holds up the others, and is closed with
    1013 when the queue passes REALTIME_SOCKET_QUEUE frames or _BYTES bytes. While this
    process cannot subscribe to the channel layer (Redis down), sockets are refused, and
    open ones are closed with 1013; browsers reconnect and catch up.
    """

    channel_layer_alias = "__no_layer_per_socket__"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' consumer loop without its per-socket costs: no task per socket to
        receive with, and no database clean-up per message (this consumer's database work
        runs in worker threads that clean up after themselves)."""
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        handlers = {
            "websocket.connect": self.websocket_connect,
            "websocket.receive": self.websocket_receive,
            "websocket.disconnect": self.websocket_disconnect,
        }
        try:
            while True:
                message = await receive()
                await handlers[message["type"]](message)
        except StopConsumer:
            pass

    async def connect(self) -> None:
        self.feed: EventFeed | None = None
        # Only while frames wait for the connection (see _write_later): most sockets never
        # need them, and a thousand idle ones should not pay for them.
        self.writer: asyncio.Task[None] | None = None
        # Writes frames encoded once straight to uvicorn's connection (realtime.wire).
        self.direct: DirectWriter | None = None
        self.outbox: deque[str] | None = None
        self.outbox_bytes = 0
        self.closer: asyncio.Task[None] | None = None
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
        # Read at once, on the loop: deltas relayed from here on reach held_back.
        recent = self.feed.deltas_since(since)
        await self.accept()
        self.direct = direct_writer(self.base_send)
        if recent is not None:
            # The feed still holds what the viewer missed (or it missed nothing): no
            # database, and the viewer gets the deltas it would have had live.
            self._release_held_back(*recent)
        else:
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
        if self.writer is None or self.outbox is None:
            self._write_now(frame)
            return
        if self.outbox and (
            len(self.outbox) >= settings.REALTIME_SOCKET_QUEUE
            or self.outbox_bytes + len(frame) > settings.REALTIME_SOCKET_QUEUE_BYTES
        ):
            # Too slow to keep up: close so it reconnects from its version and catches up.
            self._close_to_reconnect()
            return
        self.outbox_bytes += len(frame)
        self.outbox.append(frame)

    def _write_now(self, frame: str) -> None:
        """Writes the frame without a task switch: the server's send is run by hand and
        normally finishes at once (the frame goes to the connection's buffer). When it has
        to wait instead (the buffer is full), a task finishes it, and later frames queue."""
        if self.direct is not None and self.direct.write(frame):
            return
        sending: Coroutine[Any, Any, None] = self.base_send(
            {"type": "websocket.send", "text": frame}
        )
        try:
            waiting_on = sending.send(None)
        except StopIteration:
            return
        except Exception as exc:
            self._send_failed(exc)
            return
        self.outbox = deque()
        self.writer = asyncio.create_task(self._write_later(sending, waiting_on))

    async def _write_later(self, sending: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        """Finishes `sending`, which is suspended on the future `waiting_on`, then writes
        the frames queued meanwhile, in order."""
        try:
            while True:
                if isinstance(waiting_on, asyncio.Future):
                    await asyncio.wait([waiting_on])
                else:  # a bare yield: just let the loop run once
                    await asyncio.sleep(0)
                try:
                    waiting_on = sending.send(None)
                except StopIteration:
                    break
            while self.outbox:
                frame = self.outbox.popleft()
                self.outbox_bytes -= len(frame)
                await self.base_send({"type": "websocket.send", "text": frame})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._send_failed(exc)
        finally:
            sending.close()  # a send cut off by cancellation is abandoned, not left pending
            self.writer, self.outbox, self.outbox_bytes = None, None, 0

    def _send_failed(self, exc: Exception) -> None:
        """The connection is gone (its disconnect follows) or broken: no more frames."""
        logger.debug("Seat-map socket could not be written to (%s)", type(exc).__name__)
        self._leave_feed()

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
        self._release_held_back(version, [] if frame is None else [frame])

    def _release_held_back(self, reached: int, frames: list[str]) -> None:
        """Sends `frames`, which bring the viewer up to version `reached`, then the deltas
        held back meanwhile that are newer."""
        held, self.held_back = self.held_back or [], None
        for frame in frames:
            self._enqueue(frame)
        for delta_version, delta_frame in held:
            if delta_version > reached:
                self._enqueue(delta_frame)


class NoSuchSocket(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Any other WebSocket path: refused at the handshake (403) rather than a server error."""

    channel_layer_alias = "__no_layer_per_socket__"

    async def connect(self) -> None:
        await self.close()
