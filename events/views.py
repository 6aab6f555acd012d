"""The customer's way in: the list of events and an event's live seat-map page."""

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe

from seats.fragments import (
    counts_html,
    my_seats_style,
    price_tiers,
    sale_banner_html,
    seat_map_html,
    tier_style,
)
from seats.models import SeatState
from seats.selectors import seat_map

from .models import Event


def visible_event(request: HttpRequest, event_id: int) -> Event:
    """The event, if this visitor may see it. Drafts are staff-only. Raises Http404."""
    event = Event.objects.select_related("venue").filter(pk=event_id).first()
    if event is None or (event.sale_state == Event.SaleState.DRAFT and not request.user.is_staff):
        raise Http404("No such event.")
    return event


def event_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    events = Event.objects.select_related("venue").filter(starts_at__gte=now)
    if not request.user.is_staff:
        events = events.exclude(sale_state=Event.SaleState.DRAFT)
    # A seat held under an expired hold is free already, even before the sweeper runs.
    free = Q(seats__state=SeatState.AVAILABLE) | Q(
        Q(seats__state=SeatState.HELD)
        & (Q(seats__hold__expires_at__lte=now) | Q(seats__hold__ended_at__isnull=False))
    )
    events = events.annotate(
        min_price=Min("seats__price"),
        max_price=Max("seats__price"),
        seats_total=Count("seats"),
        seats_left=Count("seats", filter=free),
    )
    on_sale = [e for e in events if e.is_on_sale]
    others = [e for e in events if not e.is_on_sale]
    context = {"on_sale": on_sale, "others": others, "currency": settings.BOOKING_CURRENCY_SYMBOL}
    return render(request, "events/event_list.html", context)


def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    event = visible_event(request, event_id)
    return render_event_page(request, event)


def render_event_page(
    request: HttpRequest, event: Event, *, status: int = 200, error: str = ""
) -> HttpResponse:
    """The seat-map page. Also the answer to a form post without htmx that failed (with
    `error` and a 4xx `status`), so the customer sees the map and what went wrong together."""
    from seats.views import hold_context

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
