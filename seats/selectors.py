"""Reads that need care: effective seat states and a consistent version."""

from dataclasses import dataclass
from datetime import datetime

from events.models import Event

from .changes import event_counts, public_seat
from .models import Hold, Seat, SeatState

_SEAT_FIELDS = (
    "id",
    "section",
    "row_label",
    "number",
    "x",
    "y",
    "price",
    "state",
    "hold__expires_at",
    "hold__ended_at",
)


@dataclass(frozen=True)
class SeatMap:
    event_id: int
    version: int
    sale_state: str
    seats: list[dict]
    counts: dict[str, int]


def _public(row: dict, now: datetime) -> dict:
    state = row["state"]
    # A hold past its expiry is no hold, even before the sweeper has released it.
    if state == SeatState.HELD and (
        row["hold__ended_at"] is not None or row["hold__expires_at"] <= now
    ):
        state = SeatState.AVAILABLE
    return public_seat(
        id=row["id"],
        section=row["section"],
        row_label=row["row_label"],
        number=row["number"],
        x=row["x"],
        y=row["y"],
        price=row["price"],
        state=state,
    )


def public_seats(*, event_id: int, now: datetime, seat_ids=None) -> list[dict]:
    """The event's seats (or only `seat_ids`) as public dicts, in id order, with the state a
    viewer should see. Never says who holds or bought a seat."""
    qs = Seat.objects.filter(event_id=event_id)
    if seat_ids is not None:
        qs = qs.filter(pk__in=seat_ids)
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


def open_hold(*, customer, event_id: int, now: datetime) -> Hold | None:
    """The customer's unexpired hold for the event, if any."""
    if not customer.is_authenticated:
        return None
    return (
        Hold.objects.filter(
            customer=customer, event_id=event_id, ended_at__isnull=True, expires_at__gt=now
        )
        .order_by("-expires_at")
        .first()
    )
