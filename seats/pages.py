"""The seat-map page and the hold panel: rendered by events.views (the page) and by
seats.views (a refused form post shows the page again; htmx answers re-render the panel).

Also the seat a signed-out visitor clicked: remembered in their session, and held once when
they sign in or sign up (a POST), so the click is not lost on the way through the login page.
"""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypedDict

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe

from events.models import Event

from . import ratelimits, services
from .errors import BookingError, SeatsUnavailable
from .fragments import (
    PriceTier,
    counts_html,
    my_seats_style,
    price_tiers,
    sale_banner_html,
    seat_map_html,
    tier_style,
)
from .models import Seat, SeatFeature, seat_place
from .parsing import MAX_SEATS_PER_REQUEST, parse_id
from .payloads import PublicSeat
from .selectors import hold_summary, seat_map


def count_words(n: int, singular: str, plural: str = "") -> str:
    """ "1 seat", "2 seats": a count with its noun in the right number."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def duration_words(duration: timedelta) -> str:
    """A duration as people say it: "1 minute", "10 minutes", "1 minute 30 seconds",
    "2 hours 5 minutes" (whole seconds; zero parts left out; "0 seconds" for none)."""
    seconds = max(0, int(duration.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        count_words(n, unit)
        for n, unit in ((hours, "hour"), (minutes, "minute"), (seconds, "second"))
        if n
    ]
    return " ".join(parts) or "0 seconds"


def hold_context(user: User | AnonymousUser, event: Event, now: datetime) -> dict[str, Any]:
    """What the hold panel template shows: the customer's open hold, its seats and total,
    and the event's hold rules in words."""
    summary = hold_summary(customer=user, event_id=event.pk, now=now)
    return {
        "hold": summary.hold,
        "hold_clock": f"{summary.seconds_left // 60}:{summary.seconds_left % 60:02d}",
        "hold_seat_ids": ",".join(str(s.pk) for s in summary.seats),
        "held_seats": summary.seats,
        "held_count": count_words(len(summary.seats), "seat"),
        "hold_total": summary.total,
        "hold_duration_words": duration_words(event.hold_duration),
        "seat_limit_words": count_words(event.max_seats_per_customer, "seat"),
        "sale_open": event.is_on_sale,
        "currency": settings.BOOKING_CURRENCY_SYMBOL,
    }


class SectionChoice(TypedDict):
    name: str
    prices: str  # "€40.00", or lowest to highest with a dash between
    tiers: list[PriceTier]


class TierSections(TypedDict):
    tier: PriceTier
    sections: list[str]


def _money(price: Decimal) -> str:
    return f"{settings.BOOKING_CURRENCY_SYMBOL}{price:.2f}"


def sections_of(seats: list[PublicSeat], tiers: list[PriceTier]) -> list[SectionChoice]:
    """The sections in map order, each with its price range and its price tiers."""
    prices: dict[str, set[str]] = {}
    for seat in seats:
        prices.setdefault(seat["section"], set()).add(f"{Decimal(seat['price']):.2f}")
    out: list[SectionChoice] = []
    for name, keys in prices.items():
        own = [t for t in tiers if t["key"] in keys]
        low, high = own[0]["price"], own[-1]["price"]
        span = _money(low) if low == high else f"{_money(low)}–{_money(high)}"
        out.append({"name": name, "prices": span, "tiers": own})
    return out


def tier_sections(tiers: list[PriceTier], sections: list[SectionChoice]) -> list[TierSections]:
    """Each price tier with the sections that have seats at that price (the legend)."""
    return [
        {"tier": t, "sections": [s["name"] for s in sections if t in s["tiers"]]} for t in tiers
    ]


def features_of(seats: list[PublicSeat]) -> list[tuple[str, str]]:
    """The seat features (code, words) some seat of the map has, in SeatFeature order."""
    present = {code for seat in seats for code in seat["features"]}
    return [(f.value, str(f.label)) for f in SeatFeature if f.value in present]


def render_seat_map_page(
    request: HttpRequest, event: Event, *, status: int = 200, error: str = ""
) -> HttpResponse:
    """The seat-map page. Also the answer to a form post without htmx that failed (with
    `error` and a 4xx `status`), so the customer sees the map and what went wrong together."""
    now = timezone.now()
    # The version is read before the seats (seat_map), so live deltas after it apply cleanly.
    live_map = seat_map(event_id=event.pk, now=now)
    tiers = price_tiers(live_map.seats)
    sections = sections_of(live_map.seats, tiers)
    hold = hold_context(request.user, event, now)
    context = {
        "event": event,
        "map": live_map,
        # The fragments escape everything they interpolate.
        "seat_map_html": mark_safe(seat_map_html(live_map.seats)),
        "counts_html": mark_safe(counts_html(live_map.counts)),
        # The sale state read with the version: a change after it arrives as a delta.
        "sale_banner_html": mark_safe(sale_banner_html(live_map.sale_state)),
        "sale_state": live_map.sale_state,
        "sale_state_labels": [(str(v), str(label)) for v, label in Event.SaleState.choices],
        "tiers": tiers,
        "tier_sections": tier_sections(tiers, sections),
        "sections": sections,
        "features": features_of(live_map.seats),
        "find_counts": range(1, min(event.max_seats_per_customer, MAX_SEATS_PER_REQUEST) + 1),
        "find_default": min(2, event.max_seats_per_customer),
        "tier_style": mark_safe(tier_style(tiers)),
        "my_seats_style": mark_safe(my_seats_style(s.pk for s in hold["held_seats"])),
        "error": error,
        "now": now,
        "heartbeat_seconds": settings.REALTIME_HEARTBEAT_SECONDS,
        **hold,
    }
    return render(request, "events/event_detail.html", context, status=status)


# --- the seat clicked while signed out ------------------------------------------------------

_PICKED = "seat_picked_signed_out"
# A seat clicked longer ago than this is not held at a later sign-in: the visitor has moved on.
PICKED_SEAT_KEEPS = timedelta(minutes=30)


def remember_seat_picked_signed_out(request: HttpRequest, *, event: Event, seat_id: int) -> None:
    """Keeps the seat a signed-out visitor clicked in their session (the last one only), for
    hold_seat_picked_signed_out to hold once they have signed in."""
    request.session[_PICKED] = {
        "event": event.pk,
        "seat": seat_id,
        "at": timezone.now().isoformat(),
    }


def hold_seat_picked_signed_out(request: HttpRequest, user: User) -> None:
    """Call from the POST that has just signed `user` in (login or sign-up). Holds the seat
    they clicked while signed out, if it was recent, and says so in a message: held, or taken
    meanwhile. Forgets the seat either way, so it is tried once."""
    picked = request.session.pop(_PICKED, None)
    if not isinstance(picked, dict):
        return
    event_id, seat_id = parse_id(picked.get("event")), parse_id(picked.get("seat"))
    try:
        at = datetime.fromisoformat(str(picked.get("at")))
    except ValueError:
        return
    if event_id is None or seat_id is None or timezone.now() - at > PICKED_SEAT_KEEPS:
        return
    seat = Seat.objects.filter(pk=seat_id, event_id=event_id).first()
    if seat is None:
        return
    place = seat_place(seat.section, seat.row_label, seat.number)
    if not ratelimits.seat_action(customer_id=user.pk, event_id=event_id).allowed:
        messages.error(request, f"{place} was not held: too many requests. Please try again.")
        return
    try:
        hold = services.hold_seats(customer=user, event_id=event_id, seat_ids=[seat_id])
    except SeatsUnavailable:
        messages.error(request, f"{place} was taken while you signed in. Please pick another seat.")
        return
    except BookingError as error:
        messages.error(request, f"{place} was not held: {error.message}")
        return
    messages.success(request, held_message(place, hold.expires_at - timezone.now()))


def held_message(what: str, left: timedelta, *, several: bool = False) -> str:
    """ "Section A, row A, seat 1 is yours for the next 10 minutes." (whole minutes, at least
    1); `several` for seats named together ("… are yours …")."""
    minutes = max(1, round(left.total_seconds() / 60))
    verb = "are" if several else "is"
    return f"{what} {verb} yours for the next {count_words(minutes, 'minute')}."
