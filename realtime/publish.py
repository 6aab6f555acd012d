"""Hands committed seat changes to the event's Channels group (called from on_commit)."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .frames import delta_frame

logger = logging.getLogger(__name__)


def event_group(event_id: int) -> str:
    return f"event-{event_id}"


def announce_delta(delta: dict) -> None:
    """Renders the delta's frame once and publishes it to every process's viewers.

    Runs after commit, so it must not fail the request: a lost announcement is logged and
    viewers recover it through the version check in the heartbeat.
    """
    try:
        message = {
            "type": "seat.delta",
            "event": delta["event"],
            "version": delta["version"],
            "frame": delta_frame(delta),
        }
        async_to_sync(get_channel_layer().group_send)(event_group(delta["event"]), message)
    except Exception:
        logger.exception(
            "Could not announce version %s of event %s", delta.get("version"), delta.get("event")
        )
