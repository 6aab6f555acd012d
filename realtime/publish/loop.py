"""The publisher of a web process: on the server's event loop, one Redis client, frames sent
in pipelines on the channels and with the encoding of the Redis pub/sub layer's own
group_send. Whatever is submitted while one batch is out goes together in the next: one
write and one reply, however many frames."""

import asyncio
import logging
import time
import weakref
from typing import Any

import redis.asyncio
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import create_pool, decode_hosts
from django.conf import settings

from realtime.frames import DeltaMessage

from .queued import MAX_FRAME_AGE, PUBLISH_TIMEOUT, QUEUE_CAPACITY, Frame, Outage, describe

logger = logging.getLogger("realtime.publish")


class LoopPublisher:
    """Publishes frames from the event loop it is used on, in the order they were
    submitted, through `client` to the channels of `layer` (a Redis pub/sub layer)."""

    def __init__(
        self, layer: Any, client: redis.asyncio.Redis, *, capacity: int = QUEUE_CAPACITY
    ) -> None:
        self._layer = layer
        self._client = client
        self._capacity = capacity
        self._waiting: list[Frame] = []
        self._sending: asyncio.Task[None] | None = None
        self._outage = Outage()

    def submit(self, group: str, message: DeltaMessage) -> None:
        """Queues the message for publishing; never blocks. Call on the publisher's loop."""
        if len(self._waiting) >= self._capacity:
            self._outage.drop(message, "the publish queue is full")
            return
        self._waiting.append(Frame(time.monotonic(), group, message))
        if self._sending is None:
            self._sending = asyncio.get_running_loop().create_task(self._send_waiting())

    async def flush(self) -> None:
        """Returns once every frame submitted so far is published or dropped."""
        while (sending := self._sending) is not None:
            await asyncio.wait([sending])

    async def close(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the frames submitted so far (what is left is
        dropped), then closes the client. Returns False if it had to drop any."""
        flushed = True
        try:
            async with asyncio.timeout(timeout):
                await self.flush()
        except TimeoutError:
            flushed = False
            if self._sending is not None:
                self._sending.cancel()
                await asyncio.wait([self._sending])
        await self._client.aclose(close_connection_pool=True)
        return flushed

    async def _send_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch)
        finally:
            self._sending = None

    async def _send(self, batch: list[Frame]) -> None:
        now = time.monotonic()
        pipeline = self._client.pipeline(transaction=False)
        sent = []
        for frame in batch:
            if now - frame.queued_at > MAX_FRAME_AGE:
                self._outage.drop(frame.message, "it waited too long to be published")
                continue
            try:
                channel = self._layer._get_group_channel_name(frame.group)
                payload = self._layer.serialize(frame.message)
            except Exception as exc:
                self._outage.drop(frame.message, describe(exc))
                continue
            pipeline.publish(channel, payload)
            sent.append(frame)
        if not sent:
            return
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await pipeline.execute()
        except Exception as exc:
            for frame in sent:
                self._outage.drop(frame.message, describe(exc))
        else:
            self._outage.published()


# Each loop's publisher, or None where the layer is not Redis pub/sub on one host (sharded
# layers choose each group's host themselves): those frames go through the thread.
_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPublisher | None]" = (
    weakref.WeakKeyDictionary()
)


def loop_publisher() -> LoopPublisher | None:
    """The running loop's publisher, made on first use; None for a layer it cannot serve."""
    loop = asyncio.get_running_loop()
    try:
        return _by_loop[loop]
    except KeyError:
        pass
    # A client holds its loop through its connections: closed loops' entries are let go here.
    for closed in [other for other in _by_loop if other.is_closed()]:
        del _by_loop[closed]
    layer = get_channel_layer()
    found = None
    if isinstance(layer, RedisPubSubChannelLayer):
        config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
        hosts = decode_hosts(config.get("hosts"))
        if len(hosts) == 1:
            # Made as the layer makes its own connections (same address and options).
            client = redis.asyncio.Redis(connection_pool=create_pool(hosts[0]))
            found = LoopPublisher(layer, client)
    _by_loop[loop] = found
    return found


async def close_loop_publisher(timeout: float) -> bool:
    """At shutdown, on the loop: its publisher's frames out (at most `timeout` seconds) and
    its client closed. Returns False if frames had to be dropped."""
    found = _by_loop.pop(asyncio.get_running_loop(), None)
    return await found.close(timeout) if found is not None else True
