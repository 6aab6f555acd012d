"""One channel-layer subscription per process per event, fanned out to local sockets.

Channels' stock pattern (every socket in the group, every message dispatched per socket)
costs a layer round trip per viewer. Here each process subscribes once per event; the frame,
rendered once by the publisher, is handed to every local socket as the same string.
"""

import asyncio
import logging
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from events.models import Event

from .db import in_worker_thread
from .frames import FrameKind, version_marker
from .publish import event_group

logger = logging.getLogger(__name__)

# How long a frame that arrived ahead of a missing version waits for it. Publishes from
# different processes can reach Redis out of commit order; past this, the gap is passed on
# and clients resync.
REORDER_WAIT = 0.25


class Subscriber(Protocol):
    def deliver(self, *, kind: FrameKind, version: int, frame: str) -> None: ...


def _current_version(event_id: int) -> int | None:
    return Event.objects.filter(pk=event_id).values_list("version", flat=True).first()


class EventFeed:
    def __init__(self, event_id: int) -> None:
        self.event_id = event_id
        self.subscribers: set[Subscriber] = set()
        self.last_version: int | None = None
        self._ahead: dict[int, str] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._channel: str | None = None
        self._tasks: list[asyncio.Task] = []
        self.started = asyncio.get_running_loop().create_future()
        self.stop_handle: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        layer = get_channel_layer()
        self._channel = await layer.new_channel(f"feed.{self.event_id}.")
        await layer.group_add(event_group(self.event_id), self._channel)
        self._tasks = [
            asyncio.create_task(self._pump(layer)),
            asyncio.create_task(self._heartbeat()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._flush_handle:
            self._flush_handle.cancel()
        if self._channel:
            try:
                await get_channel_layer().group_discard(event_group(self.event_id), self._channel)
            except Exception:
                logger.exception("Could not leave the group of event %s", self.event_id)

    async def _pump(self, layer) -> None:
        while True:
            try:
                message = await layer.receive(self._channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Feed of event %s could not receive; retrying", self.event_id)
                await asyncio.sleep(0.5)
                continue
            try:
                if message.get("type") == "seat.delta":
                    self._on_delta(int(message["version"]), message["frame"])
            except Exception:
                logger.exception("Feed of event %s could not relay a message", self.event_id)

    def _on_delta(self, version: int, frame: str) -> None:
        if self.last_version is None or version == self.last_version + 1:
            self._relay(version, frame)
            self._relay_in_order()
        elif version > self.last_version + 1:
            self._ahead[version] = frame
            if self._flush_handle is None:
                loop = asyncio.get_running_loop()
                self._flush_handle = loop.call_later(REORDER_WAIT, self._give_up_waiting)
        # A version at or below last_version is a duplicate or came too late: dropped.

    def _relay(self, version: int, frame: str) -> None:
        self.last_version = version
        for subscriber in tuple(self.subscribers):
            subscriber.deliver(kind=FrameKind.DELTA, version=version, frame=frame)

    def _relay_in_order(self) -> None:
        while self.last_version + 1 in self._ahead:
            self._relay(self.last_version + 1, self._ahead.pop(self.last_version + 1))
        if not self._ahead and self._flush_handle:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _give_up_waiting(self) -> None:
        self._flush_handle = None
        for version in sorted(self._ahead):
            self._relay(version, self._ahead.pop(version))

    async def _heartbeat(self) -> None:
        """Tells every socket the database's version: a viewer behind it missed something."""
        interval = settings.REALTIME_HEARTBEAT_SECONDS
        while True:
            await asyncio.sleep(interval)
            try:
                version = await in_worker_thread(_current_version)(self.event_id)
            except Exception:
                logger.exception("Heartbeat of event %s could not read its version", self.event_id)
                continue
            if version is None:
                continue
            frame = version_marker(kind=FrameKind.HEARTBEAT, version=version)
            for subscriber in tuple(self.subscribers):
                subscriber.deliver(kind=FrameKind.HEARTBEAT, version=version, frame=frame)


class FeedRegistry:
    """The feeds of one event loop (one server process)."""

    def __init__(self) -> None:
        self.feeds: dict[int, EventFeed] = {}
        # Catch-ups render seats in worker threads; a handful at once is plenty.
        self.catch_up_slots = asyncio.Semaphore(2)
        # Starts and stops in flight: referenced until done, so none is collected mid-way.
        self._background: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def subscribe(self, event_id: int, subscriber: Subscriber) -> EventFeed:
        """Adds the subscriber and returns once the process is subscribed to the event's
        group, so any change committed after this returns reaches the subscriber."""
        feed = self.feeds.get(event_id)
        if feed is None:
            feed = self.feeds[event_id] = EventFeed(event_id)
            self._spawn(self._start(feed))
        if feed.stop_handle:
            feed.stop_handle.cancel()
            feed.stop_handle = None
        feed.subscribers.add(subscriber)
        await asyncio.shield(feed.started)
        return feed

    async def _start(self, feed: EventFeed) -> None:
        try:
            await feed.start()
        except Exception as exc:
            if self.feeds.get(feed.event_id) is feed:
                del self.feeds[feed.event_id]
            feed.started.set_exception(exc)
            return
        feed.started.set_result(None)
        if self.feeds.get(feed.event_id) is not feed:
            # Every viewer left while it was starting, and it was already dropped.
            await feed.stop()

    def unsubscribe(self, event_id: int, subscriber: Subscriber) -> None:
        feed = self.feeds.get(event_id)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers and feed.stop_handle is None:
            # Linger a little: a reloading page resubscribes at once.
            loop = asyncio.get_running_loop()
            feed.stop_handle = loop.call_later(
                settings.REALTIME_FEED_LINGER, lambda: self._spawn(self._stop(feed))
            )

    async def _stop(self, feed: EventFeed) -> None:
        if feed.subscribers or self.feeds.get(feed.event_id) is not feed:
            return
        del self.feeds[feed.event_id]
        await feed.stop()

    async def close(self) -> None:
        feeds, self.feeds = list(self.feeds.values()), {}
        for feed in feeds:
            await feed.stop()


_registries: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FeedRegistry]" = (
    weakref.WeakKeyDictionary()
)


def registry() -> FeedRegistry:
    """The running loop's registry (one per server process; tests get one per loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _registries:
        _registries[loop] = FeedRegistry()
    return _registries[loop]
