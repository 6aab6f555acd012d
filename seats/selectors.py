"""Reads that need care: effective seat states and a consistent version."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AnonymousUser, User

from events.models import Event

from .changes import event_counts
from .models import Hold, Seat, seat_features, visible_state
from .payloads import PublicSeat, SeatCounts, public_seat

_SEAT_FIELDS = (
    "id",
    "section",
    "row_label",
    "number",
    "x",
    "y",
    "price",
    "state",
    "wheelchair",
    "companion",
    "restricted_view",
    "hold__expires_at",
    "hold__ended_at",
)


@dataclass(frozen=True)
class SeatMap:
    event_id: int
    version: int
    sale_state: str
    seats: list[PublicSeat]
    counts: SeatCounts


def _public(row: dict[str, Any], now: datetime) -> PublicSeat:
    return public_seat(
        id=row["id"],
        section=row["section"],
        row_label=row["row_label"],
        number=row["number"],
        x=row["x"],
        y=row["y"],
        price=row["price"],
        state=visible_state(
            row["state"],
            hold_expires_at=row["hold__expires_at"],
            hold_ended_at=row["hold__ended_at"],
            now=now,
        ),
        features=seat_features(
            wheelchair=row["wheelchair"],
            companion=row["companion"],
            restricted_view=row["restricted_view"],
        ),
    )


def public_seats(
    *, event_id: int, now: datetime, seat_ids: Iterable[int] | None = None
) -> list[PublicSeat]:
    """The event's seats (or only `seat_ids`) as public dicts, in id order, with the state a
    viewer should see. Never says who holds or bought a seat."""
    qs = Seat.objects.filter(event_id=event_id)
    if seat_ids is not None:
        qs = qs.filter(pk__in=list(seat_ids))
    return [_public(row, now) for row in qs.order_by("pk").values(*_SEAT_FIELDS)]


def seat_map(*, event_id: int, now: datetime) -> SeatMap:
    """The whole map at a version. The version is read before the seats, so the seats are
    at least that new; any later change reaches the viewer as a delta with a higher version."""
    event = Event.objects.get(pk=event_id)
    seats = public_seats(event_id=event_id, now=now)
    # The counters, as in every live frame, so the counts never flip between two rules.
    return SeatMap(
        event_id=event_id,
        version=event.version,
        sale_state=event.sale_state,
        seats=seats,
        counts=event_counts(event),
    )


def open_hold(*, customer: User | AnonymousUser, event_id: int, now: datetime) -> Hold | None:
    """The customer's unexpired hold for the event, if any (none for an anonymous visitor)."""
    if not customer.is_authenticated:
        return None
    return Hold.objects.open_for(customer_id=customer.pk, event_id=event_id, now=now)


@dataclass(frozen=True)
class HoldSummary:
    """What the customer's basket panel shows."""

    hold: Hold | None
    seats: list[Seat]
    total: Decimal
    seconds_left: int


def hold_summary(*, customer: User | AnonymousUser, event_id: int, now: datetime) -> HoldSummary:
    hold = open_hold(customer=customer, event_id=event_id, now=now)
    seats = list(hold.seats.order_by("pk")) if hold else []
    seconds_left = max(0, int((hold.expires_at - now).total_seconds())) if hold else 0
    total = sum((s.price for s in seats), Decimal("0"))
    return HoldSummary(hold=hold, seats=seats, total=total, seconds_left=seconds_left)
