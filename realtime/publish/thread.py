"""The publisher of processes without a server loop (a management command, the sweeper
worker), and of layers the loop's publisher does not serve: a daemon thread with an event
loop of its own, which group-sends one frame at a time in the order they were queued."""

import asyncio
import atexit
import os
import queue
import threading
import time

from channels.layers import get_channel_layer

from realtime.frames import DeltaMessage

from .queued import MAX_FRAME_AGE, PUBLISH_TIMEOUT, QUEUE_CAPACITY, Frame, Outage, describe


class Publisher:
    """Publishes frames from one daemon thread, in the order they were submitted."""

    def __init__(self, *, capacity: int = QUEUE_CAPACITY) -> None:
        self._queue: queue.Queue[Frame | threading.Event] = queue.Queue(capacity)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._outage = Outage()

    def submit(self, group: str, message: DeltaMessage) -> None:
        """Queues the message for publishing; never blocks."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(Frame(time.monotonic(), group, message))
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
                        self._outage.drop(item.message, describe(exc))
                    else:
                        self._outage.published()

    async def _publish(self, frame: Frame) -> None:
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
