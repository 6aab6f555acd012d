"""The publishers: committed changes go out in order, from the server's loop in batches or
from a thread of their own, and a layer that is down or stuck costs dropped frames (logged
once), never a waiting request."""

import asyncio
import logging
import threading
import time

import pytest
import redis.asyncio
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

from realtime import publish
from realtime.feed import EventFeed, registry
from realtime.publish import LoopPublisher, Publisher


class RecordingLayer:
    def __init__(self, *, stuck: bool = False) -> None:
        self.stuck = stuck
        self.sent: list[tuple[str, int]] = []

    async def group_send(self, group: str, message: dict) -> None:
        if self.stuck:
            await asyncio.sleep(60)
        self.sent.append((threading.current_thread().name, message["version"]))


def message(version: int) -> dict:
    return {"type": "seat.delta", "event": 1, "version": version, "frame": "<div></div>"}


@pytest.fixture
def layer(monkeypatch):
    """A layer that is not Redis pub/sub: its frames go through the publisher thread."""
    layer = RecordingLayer()
    for module in (publish, publish.thread, publish.loop):
        monkeypatch.setattr(module, "get_channel_layer", lambda: layer)
    return layer


def test_frames_are_published_in_order_from_the_publisher_thread(layer):
    publisher = Publisher()
    for version in range(1, 101):
        publisher.submit("event-1", message(version))

    assert publisher.flush(timeout=5)
    assert layer.sent == [("realtime-publisher", version) for version in range(1, 101)]


def test_a_stuck_layer_drops_frames_without_making_anyone_wait(layer, monkeypatch, caplog):
    monkeypatch.setattr(publish.thread, "PUBLISH_TIMEOUT", 0.05)
    monkeypatch.setattr(publish.thread, "MAX_FRAME_AGE", 0.2)
    layer.stuck = True
    publisher = Publisher(capacity=5)

    started = time.monotonic()
    for version in range(1, 21):
        publisher.submit("event-1", message(version))
    assert time.monotonic() - started < 0.5
    assert publisher.flush(timeout=5)
    assert layer.sent == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not being published" in warnings[0]

    layer.stuck = False
    publisher.submit("event-1", message(21))
    assert publisher.flush(timeout=5)
    assert layer.sent == [("realtime-publisher", 21)]
    assert "Publishing live updates again, after dropping 20" in caplog.text


@pytest.fixture
def batches(monkeypatch):
    """The versions in each batch the loop publishers send."""
    sent: list[list[int]] = []
    send = LoopPublisher._send

    async def recording(self, batch):
        sent.append([frame.message["version"] for frame in batch])
        await send(self, batch)

    monkeypatch.setattr(LoopPublisher, "_send", recording)
    return sent


async def subscribed(url: str, group: str):
    """A plain Redis subscription to the channel the layer's group_send publishes `group` on."""
    subscription = redis.asyncio.Redis.from_url(url).pubsub()
    await subscription.subscribe(get_channel_layer()._get_group_channel_name(group))
    return subscription


async def versions_heard(subscription, until: int) -> list[int]:
    heard: list[int] = []
    async with asyncio.timeout(5):
        while until not in heard:
            found = await subscription.get_message(ignore_subscribe_messages=True, timeout=1)
            if found is not None:
                heard.append(get_channel_layer().deserialize(found["data"])["version"])
    return heard


@pytest.mark.redis
def test_on_the_loop_frames_queued_while_a_batch_is_out_go_through_redis_in_the_next(batches):
    """A batch is one pipeline, published as the layer's own group_send would: its
    subscription gets every frame, in order."""
    layer = get_channel_layer()
    assert isinstance(layer, RedisPubSubChannelLayer)

    async def scenario() -> list[int]:
        channel = await layer.new_channel("test.")
        await layer.group_add("event-77", channel)
        publisher = publish.loop_publisher()
        assert publisher is not None
        publisher.submit("event-77", message(1))
        await asyncio.sleep(0)  # version 1 is on its way
        for version in range(2, 51):
            publisher.submit("event-77", message(version))
        assert await publish.close_loop_publisher(timeout=5)
        received = []
        async with asyncio.timeout(5):
            for _ in range(50):
                received.append((await layer.receive(channel))["version"])
        await layer.group_discard("event-77", channel)
        return received

    assert asyncio.run(scenario()) == list(range(1, 51))
    assert batches == [[1], list(range(2, 51))]


@pytest.mark.redis
def test_on_the_loop_a_frozen_redis_costs_dropped_frames_never_a_wait(
    throwaway_redis, monkeypatch, caplog
):
    """Frames beyond the queue's room are dropped unsent; the batch that timed out is dropped
    too, though a Redis that wakes up may still publish what was written to it."""
    monkeypatch.setattr(publish.loop, "PUBLISH_TIMEOUT", 0.2)
    layer = get_channel_layer()

    async def scenario() -> list[int]:
        client = redis.asyncio.Redis.from_url(throwaway_redis.url)
        publisher = LoopPublisher(layer, client, capacity=5)
        subscription = await subscribed(throwaway_redis.url, "event-1")
        publisher.submit("event-1", message(1))
        await publisher.flush()  # connected and publishing
        throwaway_redis.freeze()
        try:
            started = time.monotonic()
            for version in range(2, 22):
                publisher.submit("event-1", message(version))  # 7 to 21: the queue is full
            assert time.monotonic() - started < 0.5
            await publisher.flush()  # 2 to 6: timed out
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "not being published" in warnings[0]
        finally:
            throwaway_redis.thaw()
        publisher.submit("event-1", message(22))
        assert await publisher.close(timeout=5)
        heard = await versions_heard(subscription, until=22)
        await subscription.aclose()
        return heard

    heard = asyncio.run(scenario())
    assert heard[0] == 1 and heard[-1] == 22
    assert set(heard[1:-1]) <= {2, 3, 4, 5, 6}  # never 7 to 21
    assert "Publishing live updates again, after dropping 20" in caplog.text


class RecordingSubscriber:
    def __init__(self) -> None:
        self.versions: list[int] = []

    def deliver(self, *, kind: str, version: int, frame: str) -> None:
        self.versions.append(version)

    def feed_lost(self) -> None:
        raise AssertionError("the feed was not lost")


def test_this_process_s_viewers_get_its_changes_without_waiting_on_the_layer(layer, monkeypatch):
    """A change committed here goes to this process's feed on the server's loop at once,
    from the loop's own thread (a booking on the loop) or a request's thread alike, even
    while publishing is stuck; the copy the layer brings back later is dropped there."""
    monkeypatch.setattr(publish.thread, "PUBLISH_TIMEOUT", 0.05)
    monkeypatch.setattr(publish.thread, "_publisher", None)  # one of its own, dropping these
    monkeypatch.setattr(publish, "_server_loop", None)  # this test's loop, forgotten after
    layer.stuck = True

    def delta(version: int) -> dict:
        return {"event": 1, "version": version, "seats": [], "counts": {}}

    async def scenario() -> list[int]:
        publish.serve_from(asyncio.get_running_loop())
        feed = EventFeed(1, on_lost=lambda feed: None)
        feed.started.set_result(None)
        feed.last_version = feed.recent_after = 4
        subscriber = RecordingSubscriber()
        feed.subscribers.add(subscriber)
        registry().feeds[1] = feed
        try:
            publish.announce_delta(delta(5))  # on the loop's thread
            await asyncio.to_thread(publish.announce_delta, delta(6))  # a request's thread
            async with asyncio.timeout(5):
                while len(subscriber.versions) < 2:
                    await asyncio.sleep(0.01)
            feed.relay_local(5, "<div></div>")  # version 5 again, as the layer's copy comes
            return subscriber.versions
        finally:
            del registry().feeds[1]

    assert asyncio.run(scenario()) == [5, 6]
    assert publish.flush_publisher(timeout=5)
    assert layer.sent == []  # stuck: nothing went out through the layer


def test_a_feed_that_knows_no_version_yet_takes_its_first_from_the_subscription():
    """Its first version sets where it goes on from: a local one ahead of a version committed
    elsewhere, still on its way through Redis, would make that one look already passed."""

    async def scenario() -> tuple[list[int], int | None]:
        feed = EventFeed(1, on_lost=lambda feed: None)
        feed.started.set_result(None)
        subscriber = RecordingSubscriber()
        feed.subscribers.add(subscriber)
        feed.relay_local(7, "<div></div>")
        return subscriber.versions, feed.last_version

    assert asyncio.run(scenario()) == ([], None)
