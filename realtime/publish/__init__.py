"""Hands committed seat changes to every process's viewers (the seats_changed receiver).

A committing request never waits on the channel layer. It renders the change's frame and
queues it for its process's publisher, which publishes the frames in the order they were
queued. In a web process that is the server's event loop (`.loop`): a request's thread hands
its frame to that loop, and the frames queued while one batch is on its way go out together
in the next, in one Redis pipeline. Elsewhere (a management command, the sweeper worker), and
for a layer the loop's publisher does not serve, it is a daemon thread (`.thread`). A frame
that cannot be published (the queue is full, Redis is down or stopped answering) is dropped
and logged: viewers repair the gap from the database through their version checks, the
heartbeat and resync.

The process's own viewers do not wait for that round trip: the frame is also handed to its
feed of the event on the server's event loop (`_publish_and_relay`), and the copy that comes
back through Redis is dropped there as one already relayed.

The in-memory channel layer (one process: the embedded default and the tests) is published
to at once instead, on the event loop its sockets are served by: it never waits on anything,
and it is not thread-safe, so its queues and groups must only be touched from that loop. A
request's thread (a WSGI worker, see booking_site/asgi.py) hands the send to that loop without
waiting for it.
"""

import asyncio
import concurrent.futures
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from seats.payloads import SeatDelta

from ..feed import registry
from ..frames import DeltaMessage, delta_frame, event_group
from .loop import LoopPublisher, close_loop_publisher, loop_publisher
from .queued import describe
from .thread import Publisher, flush_publisher, publisher

__all__ = [
    "LoopPublisher",
    "Publisher",
    "announce_delta",
    "close_loop_publisher",
    "flush_publisher",
    "loop_publisher",
    "on_seats_changed",
    "publisher",
    "serve_from",
    "stop_serving",
]

logger = logging.getLogger(__name__)


# The event loop serving this process's sockets (the server's), once the ASGI app has run.
_server_loop: asyncio.AbstractEventLoop | None = None
# In-process sends scheduled on the running loop, kept until done (a task nobody references
# may be garbage-collected mid-flight).
_in_process_sends: set[asyncio.Task[None]] = set()


def serve_from(loop: asyncio.AbstractEventLoop) -> None:
    """Records the event loop that serves this process's sockets (the ASGI app calls it)."""
    global _server_loop
    _server_loop = loop


async def stop_serving(timeout: float) -> bool:
    """At shutdown, on the server's loop: changes committed from now on go to the publisher
    thread, and the loop's publisher gets its frames out within `timeout` seconds and closes.
    Returns False if frames had to be dropped."""
    global _server_loop
    if _server_loop is asyncio.get_running_loop():
        _server_loop = None
    return await close_loop_publisher(timeout)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _log_failed_send(future: "concurrent.futures.Future[None] | asyncio.Task[None]") -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.error("Could not announce a change in this process: %s", describe(exc))


def _send_in_process(layer: InMemoryChannelLayer, group: str, message: DeltaMessage) -> None:
    """Group-sends on the in-memory layer from the loop its sockets run on, without waiting.

    From that loop's own thread: a task. From any other thread while the server's loop runs
    (a WSGI request thread): handed to that loop. With no server (a management command, a
    test's thread under `sync_to_async`): `async_to_sync`, which runs it on the loop that
    started this thread, if any, or on a loop of its own.
    """
    running = _running_loop()
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
    try:
        (loop_publisher() or publisher()).submit(group, message)
    except Exception:
        logger.exception(
            "Could not publish version %s of event %s", message["version"], message["event"]
        )
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
    running = _running_loop()
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
