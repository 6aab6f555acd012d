"""The seat-map page and the hold panel: rendered by events.views (the page) and by
seats.views (a refused form post shows the page again; htmx answers re-render the panel)."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe

from events.models import Event

from .fragments import (
    counts_html,
    my_seats_style,
    price_tiers,
    sale_banner_html,
    seat_map_html,
    tier_style,
)
from .selectors import hold_summary, seat_map


def hold_context(user: User | AnonymousUser, event: Event, now: datetime) -> dict[str, Any]:
    """What the hold panel template shows: the customer's open hold, its seats and total."""
    summary = hold_summary(customer=user, event_id=event.pk, now=now)
    return {
        "hold": summary.hold,
        "hold_clock": f"{summary.seconds_left // 60}:{summary.seconds_left % 60:02d}",
        "hold_seat_ids": ",".join(str(s.pk) for s in summary.seats),
        "held_seats": summary.seats,
        "hold_total": summary.total,
        "currency": settings.BOOKING_CURRENCY_SYMBOL,
    }


def render_seat_map_page(
    request: HttpRequest, event: Event, *, status: int = 200, error: str = ""
) -> HttpResponse:
    """The seat-map page. Also the answer to a form post without htmx that failed (with
    `error` and a 4xx `status`), so the customer sees the map and what went wrong together."""
    now = timezone.now()
    # The version is read before the seats (seat_map), so live deltas after it apply cleanly.
    live_map = seat_map(event_id=event.pk, now=now)
    tiers = price_tiers(live_map.seats)
    hold = hold_context(request.user, event, now)
    context = {
        "event": event,
        "map": live_map,
        # The fragments escape everything they interpolate.
        "seat_map_html": mark_safe(seat_map_html(live_map.seats)),
        "counts_html": mark_safe(counts_html(live_map.counts)),
        # The sale state read with the version: a change after it arrives as a delta.
        "sale_banner_html": mark_safe(sale_banner_html(live_map.sale_state)),
        "tiers": tiers,
        "tier_style": mark_safe(tier_style(tiers)),
        "my_seats_style": mark_safe(my_seats_style(s.pk for s in hold["held_seats"])),
        "error": error,
        "now": now,
        "heartbeat_seconds": settings.REALTIME_HEARTBEAT_SECONDS,
        **hold,
    }
    return render(request, "events/event_detail.html", context, status=status)
