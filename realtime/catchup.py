"""What a viewer missed: the changed seats since its version, or a whole fresh map."""

import time
from datetime import datetime

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from events.models import Event
from seats.changes import event_counts
from seats.fragments import counts_html, sale_banner_html, seat_html, seat_map_html
from seats.models import SeatChange
from seats.selectors import public_seats

from .frames import FrameKind, version_marker

# The last whole-map frame rendered in this process, per event: (version, monotonic time,
# frame). Many sockets asking for the same map at the same version share one render. Kept a
# second at most, since an expired hold turns a seat free without a new version.
_whole_maps: dict[int, tuple[int, float, str]] = {}
WHOLE_MAP_REUSE_SECONDS = 1.0
# A catch-up naming more changed seats than this sends the whole map instead.
CATCH_UP_MAX_SEATS = 2_000


def _whole_map_frame(event: Event, *, now: datetime) -> str:
    cached = _whole_maps.get(event.pk)
    if (
        cached
        and cached[0] == event.version
        and time.monotonic() - cached[1] < WHOLE_MAP_REUSE_SECONDS
    ):
        return cached[2]
    seats = public_seats(event_id=event.pk, now=now)
    frame = (
        version_marker(kind=FrameKind.RESET, version=event.version)
        + sale_banner_html(event.sale_state, oob=True)
        + seat_map_html(seats, oob=True)
        + counts_html(event_counts(event), oob=True)
    )
    _whole_maps[event.pk] = (event.version, time.monotonic(), frame)
    return frame


def _log_replays_from(event_id: int, since: int) -> bool:
    """Whether the retained change log still holds every change after version `since`.

    Pruning (seats.sweeper.prune_seat_changes) deletes a prefix of each event's log by
    version, so what is left is complete from its oldest version on. Versions before that
    may have changed seats (pruned) or only opened or closed the sale (never logged); the
    two look alike, so a viewer from before the oldest logged change gets a whole map: more
    than it needed at worst, never less.
    """
    oldest = SeatChange.objects.filter(event_id=event_id).aggregate(oldest=Min("version"))
    return oldest["oldest"] is not None and oldest["oldest"] <= since + 1


def catch_up_frame(*, event_id: int, since: int | None) -> tuple[int, str | None]:
    """Returns (version, frame) bringing a viewer at `since` up to at least `version`, or
    (version, None) when it has missed nothing.

    The version is read before the seats, so the frame is at least that new; changes after
    it reach the viewer as deltas, which it applies in version order. A whole map is a
    "reset": the client takes it and its version even when it believed itself further on
    (a database restored from a backup has gone back in time). A viewer further behind than
    REALTIME_CATCHUP_LIMIT versions, or than the retained change log reaches back, gets one.
    """
    event = Event.objects.get(pk=event_id)
    version = event.version
    if since == version:
        return version, None
    now = timezone.now()
    banner = sale_banner_html(event.sale_state, oob=True)
    counts = counts_html(event_counts(event), oob=True)
    if since is None or since > version or version - since > settings.REALTIME_CATCHUP_LIMIT:
        return version, _whole_map_frame(event, now=now)
    changed = list(
        SeatChange.objects.filter(event_id=event_id, version__gt=since)
        .order_by()  # the model's ordering would make DISTINCT keep one row per change
        .values_list("seat_id", flat=True)
        .distinct()[: CATCH_UP_MAX_SEATS + 1]
    )
    if len(changed) > CATCH_UP_MAX_SEATS:
        # Cheaper as the whole map than as a query naming this many seats.
        return version, _whole_map_frame(event, now=now)
    # Asked after reading the changes: a prune meanwhile only raises the oldest version.
    if not _log_replays_from(event_id, since):
        return version, _whole_map_frame(event, now=now)
    seats = public_seats(event_id=event_id, now=now, seat_ids=changed)
    marker = version_marker(kind=FrameKind.SYNC, version=version)
    return version, marker + banner + "".join(seat_html(s, oob=True) for s in seats) + counts
