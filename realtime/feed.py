"""One channel-layer subscription per process per event, fanned out to local sockets.

Channels' stock pattern (every socket in the group, every message dispatched per socket)
costs a layer round trip per viewer. Here each process subscribes once per event; the frame,
rendered once by the publisher, is handed to every local socket as the same string.

A feed watches its subscription: a probe sent to its own channel every second must come
back within two. When one does not (Redis down or stuck), or receiving fails, the feed is
lost: it leaves the registry and tells its sockets, which close (1013) so their pages say
live updates are paused and reconnect. A reconnect is refused while the layer cannot be
subscribed to, and once it can, catches up from its version out of the database.
"""

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from events.models import Event

from .db import in_worker_thread
from .frames import FrameKind, event_group, version_marker

logger = logging.getLogger(__name__)

# How long a frame that arrived ahead of a missing version waits for it. Publishes from
# different processes can reach Redis out of commit order; past this, the gap is passed on
# and clients resync.
REORDER_WAIT = 0.25
# A probe every LIVENESS_INTERVAL seconds must come back within LIVENESS_TIMEOUT.
LIVENESS_INTERVAL = 1.0
LIVENESS_TIMEOUT = 2.0
# Longest a feed may take to subscribe, or to leave when it stops.
START_TIMEOUT = 3.0
STOP_TIMEOUT = 2.0
# After an event's feed was lost or could not start, sockets are refused this long before
# the next attempt to subscribe, so a crowd reconnecting does not make one attempt each.
RETRY_DELAY = 1.0
# Delta frames a feed keeps: a socket connecting at one of these versions is brought up to
# date from memory, not from the database. A crowd connecting during a rush would otherwise
# queue up for database catch-ups while changes keep coming, and wait seconds for them.
RECENT_DELTAS = 256
VERSION_READ_TIMEOUT = 1.0


class FeedUnavailable(Exception):
    """The channel layer cannot be subscribed to: live updates are paused in this process."""


class Subscriber(Protocol):
    def deliver(self, *, kind: FrameKind, version: int, frame: str) -> None: ...

    def feed_lost(self) -> None:
        """The feed stopped receiving changes and has dropped the subscriber."""


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _current_version(event_id: int) -> int | None:
    return Event.objects.filter(pk=event_id).values_list("version", flat=True).first()


class EventFeed:
    def __init__(self, event_id: int, *, on_lost: Callable[["EventFeed"], None]) -> None:
        self.event_id = event_id
        self.subscribers: set[Subscriber] = set()
        self.last_version: int | None = None
        self.lost = False
        self._on_lost = on_lost
        self._ahead: dict[int, str] = {}
        # The deltas relayed last, every version after `recent_after` up to last_version
        # (None: not known yet, until the database's version is read at start).
        self.recent: deque[tuple[int, str]] = deque(maxlen=RECENT_DELTAS)
        self.recent_after: int | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._channel: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._probe: tuple[str, asyncio.Future[None]] | None = None
        self._probes_sent = 0
        # Messages received through the subscription, probes and deltas alike.
        self.received = 0
        self._stopped = False
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stop_handle: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Subscribes, and returns once a probe went through: a subscribe command is only
        written to Redis, so a stuck Redis would seem to accept it."""
        layer = get_channel_layer()
        channel: str = await layer.new_channel(f"feed.{self.event_id}.")
        self._channel = channel
        # Receiving from here on, so that stopping also leaves the channel (a pub/sub layer
        # unsubscribes a channel when its receive is cancelled).
        self._tasks.append(asyncio.create_task(self._pump(layer, channel)))
        await layer.group_add(event_group(self.event_id), channel)
        await self._probe_once(layer, channel)
        # Read after subscribing: every version above it reaches this feed. Without it (the
        # database is slow or down) sockets catch up from the database, as before.
        try:
            async with asyncio.timeout(VERSION_READ_TIMEOUT):
                version = await in_worker_thread(_current_version)(self.event_id)
        except Exception as exc:
            logger.warning(
                "Feed of event %s could not read its version (%s)", self.event_id, _describe(exc)
            )
            version = None
        if self.last_version is None and version is not None:
            self.last_version = self.recent_after = version
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        self._tasks.append(asyncio.create_task(self._watch(layer, channel)))

    async def stop(self) -> None:
        """Cancels the feed's work and leaves the group; waits on a dead layer at most
        STOP_TIMEOUT for each."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        if self._flush_handle:
            self._flush_handle.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
        if self._channel:
            try:
                await asyncio.wait_for(
                    get_channel_layer().group_discard(event_group(self.event_id), self._channel),
                    STOP_TIMEOUT,
                )
            except Exception as exc:
                logger.warning(
                    "Could not leave the group of event %s (%s: %s)",
                    self.event_id,
                    type(exc).__name__,
                    exc,
                )

    def _lose(self, reason: str) -> None:
        if self.lost or self._stopped:
            return
        self.lost = True
        logger.warning(
            "Live updates of event %s are paused in this process (%s): its %d viewers "
            "are told to reconnect",
            self.event_id,
            reason,
            len(self.subscribers),
        )
        self._on_lost(self)

    async def _pump(self, layer: Any, channel: str) -> None:
        while True:
            try:
                message = await layer.receive(channel)
            except Exception as exc:
                self._lose(f"receiving failed: {type(exc).__name__}: {exc}")
                return
            self.received += 1
            try:
                kind = message.get("type")
                if kind == "seat.delta":
                    self._on_delta(int(message["version"]), message["frame"])
                elif kind == "feed.probe":
                    self._on_probe(message.get("token"))
            except Exception:
                logger.exception("Feed of event %s could not relay a message", self.event_id)

    async def _watch(self, layer: Any, channel: str) -> None:
        """Loses the feed when a probe does not come back in time and nothing else came
        through the subscription meanwhile: the layer is down or stuck, and changes would
        not come through either. A probe that is merely late behind a rush of deltas (a busy
        process works through them in order) proves nothing is wrong: closing a thousand
        sockets then would only bring them back, to catch up, on the same busy process."""
        while True:
            await asyncio.sleep(LIVENESS_INTERVAL)
            received = self.received
            try:
                async with asyncio.timeout(LIVENESS_TIMEOUT):
                    await self._probe_once(layer, channel)
            except TimeoutError:
                if self.received > received:
                    continue
                self._lose("channel layer probe failed: no answer")
                return
            except Exception as exc:
                self._lose(f"channel layer probe failed: {type(exc).__name__}")
                return

    async def _probe_once(self, layer: Any, channel: str) -> None:
        """Sends a probe through the event's group, the way changes come, and waits until
        the pump receives it: a subscription the layer dropped (Redis gone, or an in-memory
        group membership expired) fails the probe instead of going quietly deaf. Other
        processes' feeds of the event get the probe too and ignore its token."""
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes_sent += 1
        token = f"{channel}:{self._probes_sent}"
        self._probe = (token, answered)
        await layer.group_send(event_group(self.event_id), {"type": "feed.probe", "token": token})
        await answered

    def _on_probe(self, token: object) -> None:
        if self._probe and self._probe[0] == token and not self._probe[1].done():
            self._probe[1].set_result(None)

    def relay_local(self, version: int, frame: str) -> None:
        """A change committed in this process, handed over before its trip through the
        channel layer (whose copy is then dropped as a duplicate). Ignored until the feed
        has started and knows a version to follow on from, and once it is lost: the
        subscription's copy, or the viewers' catch-up after they reconnect, brings it. (A
        feed that knows no version yet takes its first one from the subscription, in the
        order Redis has them: a local version ahead of one committed elsewhere must not be
        the first, or the earlier one would be dropped as already passed.)"""
        if (
            self.started.done()
            and not self.lost
            and not self._stopped
            and self.last_version is not None
        ):
            self._on_delta(version, frame)

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
        if self.last_version is None or version != self.last_version + 1:
            self.recent.clear()  # a gap (or the first delta): complete from here on
            self.recent_after = version - 1
        elif len(self.recent) == self.recent.maxlen:
            self.recent_after = self.recent[0][0]
        self.recent.append((version, frame))
        self.last_version = version
        for subscriber in tuple(self.subscribers):
            subscriber.deliver(kind=FrameKind.DELTA, version=version, frame=frame)

    def _relay_in_order(self) -> None:
        while self.last_version is not None and self.last_version + 1 in self._ahead:
            self._relay(self.last_version + 1, self._ahead.pop(self.last_version + 1))
        if not self._ahead and self._flush_handle:
            self._flush_handle.cancel()
            self._flush_handle = None

    def deltas_since(self, since: int | None) -> tuple[int, list[str]] | None:
        """(the feed's version, the frames of every delta after version `since` up to it, in
        order; none when `since` is that version), when this feed has relayed them all;
        None when it has not (the viewer is further back, from nothing, or ahead of the
        feed: the database knows).

        Call it on the event loop, with the subscriber already added: deltas relayed after
        it returns reach the subscriber."""
        if (
            since is None
            or self.lost
            or self.last_version is None
            or self.recent_after is None
            or not self.recent_after <= since <= self.last_version
        ):
            return None
        return self.last_version, [frame for version, frame in self.recent if version > since]

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
        # Per event: loop time before which no new feed is started (see RETRY_DELAY).
        self._retry_at: dict[int, float] = {}

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def subscribe(self, event_id: int, subscriber: Subscriber) -> EventFeed:
        """Adds the subscriber and returns once the process is subscribed to the event's
        group, so any change committed after this returns reaches the subscriber.

        Raises FeedUnavailable if the channel layer cannot be subscribed to (within
        START_TIMEOUT, or it failed less than RETRY_DELAY ago).
        """
        feed = self.feeds.get(event_id)
        if feed is None:
            if asyncio.get_running_loop().time() < self._retry_at.get(event_id, 0.0):
                raise FeedUnavailable(f"live updates of event {event_id} are paused")
            feed = self.feeds[event_id] = EventFeed(event_id, on_lost=self._lost)
            self._spawn(self._start(feed))
        if feed.stop_handle:
            feed.stop_handle.cancel()
            feed.stop_handle = None
        feed.subscribers.add(subscriber)
        try:
            await asyncio.shield(feed.started)
        except BaseException:
            self.unsubscribe(feed, subscriber)
            raise
        if feed.lost:
            raise FeedUnavailable(f"live updates of event {event_id} are paused")
        return feed

    async def _start(self, feed: EventFeed) -> None:
        try:
            await asyncio.wait_for(feed.start(), START_TIMEOUT)
        except Exception as exc:
            logger.warning(
                "Could not subscribe to the changes of event %s (%s: %s): its viewers are "
                "refused until the channel layer answers",
                feed.event_id,
                type(exc).__name__,
                str(exc) or "timed out",
            )
            self._forget(feed)
            feed.started.set_exception(FeedUnavailable(str(exc)))
            feed.started.exception()  # retrieved: no "never retrieved" warning if none waits
            await feed.stop()
            return
        feed.started.set_result(None)
        if self.feeds.get(feed.event_id) is not feed:
            # Every viewer left while it was starting, and it was already dropped.
            await feed.stop()

    def _forget(self, feed: EventFeed) -> None:
        """Drops a feed that failed, so the next socket of its event (after RETRY_DELAY)
        starts a new one."""
        if self.feeds.get(feed.event_id) is feed:
            del self.feeds[feed.event_id]
        self._retry_at[feed.event_id] = asyncio.get_running_loop().time() + RETRY_DELAY
        if feed.stop_handle:
            feed.stop_handle.cancel()
            feed.stop_handle = None

    def _lost(self, feed: EventFeed) -> None:
        self._forget(feed)
        subscribers = tuple(feed.subscribers)
        feed.subscribers.clear()
        for subscriber in subscribers:
            subscriber.feed_lost()
        if feed.started.done():
            self._spawn(feed.stop())
        # else _start stops it when it is done.

    def unsubscribe(self, feed: EventFeed, subscriber: Subscriber) -> None:
        feed.subscribers.discard(subscriber)
        if self.feeds.get(feed.event_id) is not feed:
            return
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
