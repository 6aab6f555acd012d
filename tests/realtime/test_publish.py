"""The publisher: committed changes go out in order from a thread of its own, and a layer
that is down or stuck costs dropped frames (logged once), never a waiting request."""

import asyncio
import logging
import threading
import time

import pytest

from realtime import publish
from realtime.publish import Publisher


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
    layer = RecordingLayer()
    monkeypatch.setattr(publish, "get_channel_layer", lambda: layer)
    return layer


def test_frames_are_published_in_order_from_the_publisher_thread(layer):
    publisher = Publisher()
    for version in range(1, 101):
        publisher.submit("event-1", message(version))

    assert publisher.flush(timeout=5)
    assert layer.sent == [("realtime-publisher", version) for version in range(1, 101)]


def test_a_stuck_layer_drops_frames_without_making_anyone_wait(layer, monkeypatch, caplog):
    monkeypatch.setattr(publish, "PUBLISH_TIMEOUT", 0.05)
    monkeypatch.setattr(publish, "MAX_FRAME_AGE", 0.2)
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
