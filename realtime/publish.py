"""Hands committed seat changes to the event's Channels group (seats_changed receiver)."""

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from seats.payloads import SeatDelta

from .frames import DeltaMessage, delta_frame

logger = logging.getLogger(__name__)


def event_group(event_id: int) -> str:
    return f"event-{event_id}"


# Longest a committed request waits on the channel layer: a Redis that stopped answering
# must not hang the customer's request. A lost publish is repaired by the heartbeat.
PUBLISH_TIMEOUT = 2.0


async def _publish(group: str, message: DeltaMessage) -> None:
    await asyncio.wait_for(get_channel_layer().group_send(group, message), PUBLISH_TIMEOUT)


def announce_delta(delta: SeatDelta) -> None:
    """Renders the delta's frame once and publishes it to every process's viewers.

    Runs after commit, so it must not fail the request: a lost announcement is logged and
    viewers recover it through the version check in the heartbeat.
    """
    try:
        message: DeltaMessage = {
            "type": "seat.delta",
            "event": delta["event"],
            "version": delta["version"],
            "frame": delta_frame(delta),
        }
        async_to_sync(_publish)(event_group(delta["event"]), message)
    except Exception:
        logger.exception(
            "Could not announce version %s of event %s", delta.get("version"), delta.get("event")
        )


def on_seats_changed(sender: object, *, delta: SeatDelta, **kwargs: Any) -> None:
    announce_delta(delta)
