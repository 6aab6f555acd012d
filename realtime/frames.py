"""WebSocket frames: HTML fragments that htmx swaps out-of-band by element id."""

from enum import StrEnum
from typing import Literal, TypedDict

from seats.fragments import counts_html, sale_banner_html, seat_html
from seats.payloads import SeatDelta


class FrameKind(StrEnum):
    DELTA = "delta"  # one committed change
    SYNC = "sync"  # what a viewer missed since its version
    RESET = "reset"  # the whole map
    HEARTBEAT = "heartbeat"  # the database's version


def event_group(event_id: int) -> str:
    """The channel-layer group an event's changes are published to."""
    return f"event-{event_id}"


class DeltaMessage(TypedDict):
    """What crosses the channel layer (JSON through Redis): one pre-rendered frame."""

    type: Literal["seat.delta"]
    event: int
    version: int
    frame: str


def version_marker(*, kind: FrameKind, version: int) -> str:
    """First element of every frame; the page's live.js reads kind and version from it."""
    return (
        f'<div id="live-version" data-kind="{kind.value}" data-version="{int(version)}" '
        f'hx-swap-oob="true"></div>'
    )


def delta_frame(delta: SeatDelta) -> str:
    parts = [version_marker(kind=FrameKind.DELTA, version=delta["version"])]
    parts.extend(seat_html(seat, oob=True) for seat in delta["seats"])
    parts.append(counts_html(delta["counts"], oob=True))
    if "sale_state" in delta:
        parts.append(sale_banner_html(delta["sale_state"], oob=True))
    return "".join(parts)
