"""Hands committed seat changes to every process's viewers (the seats_changed receiver).

A committing request never waits on the channel layer. It renders the change's frame and
queues it for its process's one publisher, which publishes the frames in the order they were
queued. In a web process that is the server's event loop (`LoopPublisher`): the frames queued
while one batch is on its way go out together in the next, in one write and one reply (a
Redis pipeline). A request's thread hands its frame to that loop. Elsewhere (a management
command, the sweeper worker) it is a daemon thread with an event loop of its own
(`Publisher`). A frame that cannot be published (the queue is full, Redis is down or stopped
answering) is dropped and logged: viewers repair the gap from the database through their
version checks, the heartbeat and resync.

The process's own viewers do not wait for that round trip: the frame is also handed to its
feed of the event on the server's event loop (`_publish_and_relay`), and the copy that comes back
through Redis is dropped there as one already relayed.

The in-memory channel layer (one process: the embedded default and the tests) is published
to at once instead, on the event loop its sockets are served by: it never waits on anything,
and it is not thread-safe, so its queues and groups must only be touched from that loop. A
request's thread (a WSGI worker, see booking_site/asgi.py) hands the send to that loop without
waiting for it.
"""

import asyncio
import atexit
import concurrent.futures
import logging
import os
import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import create_pool, decode_hosts
from django.conf import settings

from seats.payloads import SeatDelta

from .feed import registry
from .frames import DeltaMessage, delta_frame, event_group

logger = logging.getLogger(__name__)


# Longest one publish may take before the frame is given up.
PUBLISH_TIMEOUT = 2.0
# Frames waiting for the publisher; beyond this they are dropped, not queued.
QUEUE_CAPACITY = 1000
# A frame this old when its turn comes is dropped unsent: after a stuck Redis, publishing
# resumes with current changes instead of working through a backlog first.
MAX_FRAME_AGE = 5.0


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class _Frame:
    queued_at: float
    group: str
    message: DeltaMessage


class _Outage:
    """The frames a publisher dropped: the first of an outage is logged, and its end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dropped = 0

    def drop(self, message: DeltaMessage, reason: str) -> None:
        # Logged once per outage: a rush while Redis is down would otherwise log every frame.
        with self._lock:
            self._dropped += 1
            first = self._dropped == 1
        if first:
            logger.warning(
                "Live updates are not being published (%s): dropped version %s of event %s "
                "and will drop any more until publishing works again",
                reason,
                message["version"],
                message["event"],
            )

    def published(self) -> None:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            logger.warning("Publishing live updates again, after dropping %d", dropped)


# Redis clients of the loops that publish in pipelines, one per loop.
_pipeline_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]" = (
    weakref.WeakKeyDictionary()
)


def _pipeline_client(layer: Any) -> redis.asyncio.Redis | None:
    """The running loop's client on the layer's Redis, for a Redis pub/sub layer on one host;
    None for any other layer (its frames are group-sent one by one)."""
    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    hosts = decode_hosts(settings.CHANNEL_LAYERS["default"]["CONFIG"].get("hosts"))
    if len(hosts) != 1:
        return None  # sharded: the layer picks each group's host
    loop = asyncio.get_running_loop()
    client = _pipeline_clients.get(loop)
    if client is None:
        # Made as the layer makes its own (same address and options).
        pool = create_pool(hosts[0])
        client = _pipeline_clients[loop] = redis.asyncio.Redis(connection_pool=pool)
    return client


async def _publish(layer: Any, client: redis.asyncio.Redis | None, frames: list[_Frame]) -> None:
    """Publishes the frames in order: through `client` in one pipeline (one write, one read
    of the replies), or without one by the layer's group_send."""
    if client is None:
        for frame in frames:
            await layer.group_send(frame.group, frame.message)
        return
    pipeline = client.pipeline(transaction=False)
    for frame in frames:
        # The channel and encoding the layer's own group_send uses.
        channel = layer._get_group_channel_name(frame.group)
        pipeline.publish(channel, layer.serialize(frame.message))
    await pipeline.execute()


class LoopPublisher:
    """Publishes frames from the event loop it was made on, in the order they were
    submitted: whatever was submitted while one batch was on its way goes in the next."""

    def __init__(self, *, capacity: int = QUEUE_CAPACITY) -> None:
        self._capacity = capacity
        self._waiting: list[_Frame] = []
        self._sending: asyncio.Task[None] | None = None
        self._outage = _Outage()

    def submit(self, group: str, message: DeltaMessage) -> None:
        """Queues the message for publishing; never blocks. Call on the publisher's loop."""
        if len(self._waiting) >= self._capacity:
            self._outage.drop(message, "the publish queue is full")
            return
        self._waiting.append(_Frame(time.monotonic(), group, message))
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send_waiting())

    async def flush(self) -> None:
        """Returns once every frame submitted so far is published or dropped."""
        while self._sending is not None:
            await asyncio.shield(self._sending)

    async def _send_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch)
        finally:
            self._sending = None

    async def _send(self, batch: list[_Frame]) -> None:
        now = time.monotonic()
        fresh = []
        for frame in batch:
            if now - frame.queued_at > MAX_FRAME_AGE:
                self._outage.drop(frame.message, "it waited too long to be published")
            else:
                fresh.append(frame)
        layer = get_channel_layer()
        client = _pipeline_client(layer)
        # All in one pipeline on Redis pub/sub; one by one on any other layer.
        for frames in [fresh] if client is not None else [[frame] for frame in fresh]:
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    await _publish(layer, client, frames)
            except Exception as exc:
                for frame in frames:
                    self._outage.drop(frame.message, _describe(exc))
            else:
                self._outage.published()


class Publisher:
    """Publishes frames from one daemon thread, in the order they were submitted."""

    def __init__(self, *, capacity: int = QUEUE_CAPACITY) -> None:
        self._queue: queue.Queue[_Frame | threading.Event] = queue.Queue(capacity)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._outage = _Outage()

    def submit(self, group: str, message: DeltaMessage) -> None:
        """Queues the message for publishing; never blocks."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(_Frame(time.monotonic(), group, message))
        except queue.Full:
            self._outage.drop(message, "the publish queue is full")

    def flush(self, timeout: float) -> bool:
        """Waits until every frame submitted so far is published or dropped. Returns False
        if that took longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        self._ensure_thread()
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(max(0.0, deadline - time.monotonic()))

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="realtime-publisher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        with asyncio.Runner() as runner:
            while True:
                item = self._queue.get()
                if isinstance(item, threading.Event):
                    item.set()
                elif time.monotonic() - item.queued_at > MAX_FRAME_AGE:
                    self._outage.drop(item.message, "it waited too long to be published")
                else:
                    try:
                        runner.run(self._publish(item))
                    except Exception as exc:
                        self._outage.drop(item.message, _describe(exc))
                    else:
                        self._outage.published()

    async def _publish(self, frame: _Frame) -> None:
        layer = get_channel_layer()
        await asyncio.wait_for(layer.group_send(frame.group, frame.message), PUBLISH_TIMEOUT)


# Longest a process waits at exit for its queued frames.
SHUTDOWN_FLUSH_SECONDS = 1.0

_publisher: Publisher | None = None
_publisher_pid = 0
_publisher_lock = threading.Lock()


def publisher() -> Publisher:
    """This process's publisher (a forked child gets a fresh one: threads do not fork)."""
    global _publisher, _publisher_pid
    with _publisher_lock:
        if _publisher is None or _publisher_pid != os.getpid():
            _publisher, _publisher_pid = Publisher(), os.getpid()
            # A command or worker that exits right after a change (`sweep_holds`) still gets
            # its last frames out: atexit runs before the daemon thread is stopped.
            atexit.register(_publisher.flush, SHUTDOWN_FLUSH_SECONDS)
        return _publisher


def flush_publisher(timeout: float) -> bool:
    """Waits until this process's queued announcements are published or dropped (at
    shutdown, and in tests). Returns False if that took longer than `timeout` seconds."""
    with _publisher_lock:
        current = _publisher if _publisher_pid == os.getpid() else None
    return current.flush(timeout) if current is not None else True


# The publishers of the event loops that serve sockets (in practice one: the server's).
_loop_publishers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPublisher]" = (
    weakref.WeakKeyDictionary()
)


def loop_publisher() -> LoopPublisher:
    """The running loop's publisher."""
    loop = asyncio.get_running_loop()
    found = _loop_publishers.get(loop)
    if found is None:
        found = _loop_publishers[loop] = LoopPublisher()
    return found


async def close_loop_publisher(timeout: float) -> bool:
    """At shutdown: waits until the running loop's queued announcements are published or
    dropped, then closes its Redis client. Returns False if the wait took longer than
    `timeout` seconds (what was left is dropped)."""
    loop = asyncio.get_running_loop()
    found = _loop_publishers.pop(loop, None)
    flushed = True
    if found is not None:
        try:
            async with asyncio.timeout(timeout):
                await found.flush()
        except TimeoutError:
            flushed = False
    client = _pipeline_clients.pop(loop, None)
    if client is not None:
        await client.aclose()
    return flushed


# The event loop serving this process's sockets (the server's), once the ASGI app has run.
_server_loop: asyncio.AbstractEventLoop | None = None
# In-process sends scheduled on the running loop, kept until done (a task nobody references
# may be garbage-collected mid-flight).
_in_process_sends: set[asyncio.Task[None]] = set()


def serve_from(loop: asyncio.AbstractEventLoop) -> None:
    """Records the event loop that serves this process's sockets (the ASGI app calls it)."""
    global _server_loop
    _server_loop = loop


def _log_failed_send(future: "concurrent.futures.Future[None] | asyncio.Task[None]") -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.error("Could not announce a change in this process: %s", _describe(exc))


def _send_in_process(layer: InMemoryChannelLayer, group: str, message: DeltaMessage) -> None:
    """Group-sends on the in-memory layer from the loop its sockets run on, without waiting.

    From that loop's own thread: a task. From any other thread while the server's loop runs
    (a WSGI request thread): handed to that loop. With no server (a management command, a
    test's thread under `sync_to_async`): `async_to_sync`, which runs it on the loop that
    started this thread, if any, or on a loop of its own.
    """
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        task = running.create_task(layer.group_send(group, message))
        _in_process_sends.add(task)
        task.add_done_callback(_in_process_sends.discard)
        task.add_done_callback(_log_failed_send)
        return
    loop = _server_loop
    if loop is not None and loop.is_running():
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
        future.add_done_callback(_log_failed_send)
        return
    async_to_sync(layer.group_send)(group, message)


def _publish_and_relay(group: str, message: DeltaMessage) -> None:
    """On the server's loop: the frame to its publisher, for the other processes, and to this
    process's feed of the event, if it has one, whose viewers get it at once instead of after
    its round trip through Redis and the feed's subscription."""
    loop_publisher().submit(group, message)
    feed = registry().feeds.get(message["event"])
    if feed is not None:
        feed.relay_local(message["version"], message["frame"])


def _hand_to_server_loop(group: str, message: DeltaMessage) -> bool:
    """Hands a change committed in this process to the server's loop (after the callback or
    thread that committed it): see `_publish_and_relay`. False where no server loop runs (a
    management command, a test without a server, a server shutting down)."""
    loop = _server_loop
    if loop is None or not loop.is_running():
        return False
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if running is loop:
            loop.call_soon(_publish_and_relay, group, message)
        else:
            loop.call_soon_threadsafe(_publish_and_relay, group, message)
    except RuntimeError as exc:  # the loop closed meanwhile (shutting down)
        logger.debug("Not handed to the server's loop: %s", exc)
        return False
    return True


def announce_delta(delta: SeatDelta) -> None:
    """Renders the delta's frame once and hands it on for every process's viewers, without
    waiting for it to be published.

    Runs after commit, so it never raises: a lost announcement is logged, and viewers
    recover it through their version checks.
    """
    try:
        message: DeltaMessage = {
            "type": "seat.delta",
            "event": delta["event"],
            "version": delta["version"],
            "frame": delta_frame(delta),
        }
        group = event_group(delta["event"])
        layer = get_channel_layer()
        if isinstance(layer, InMemoryChannelLayer):
            _send_in_process(layer, group, message)
        elif not _hand_to_server_loop(group, message):
            publisher().submit(group, message)
    except Exception:
        logger.exception(
            "Could not announce version %s of event %s", delta.get("version"), delta.get("event")
        )


def on_seats_changed(sender: object, *, delta: SeatDelta, **kwargs: Any) -> None:
    announce_delta(delta)
