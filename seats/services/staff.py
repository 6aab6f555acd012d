"""Staff actions: taking seats off sale and back, opening and closing sales."""

from collections.abc import Sequence
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction

from events.models import Event

from .. import changes, locking
from ..errors import Conflict, InvalidRequest, NotFound, SeatsUnavailable
from ..models import Hold, SeatChange, SeatState
from ..parsing import clean_seat_ids
from . import rules

# Below SQLite's 32,766 bound parameters per statement.
MAX_SEATS_PER_STAFF_ACTION = 20_000


def block_seats(
    *, event_id: int, seat_ids: Sequence[int], actor: User, now: datetime | None = None
) -> int:
    """Takes available seats off sale. Returns how many changed.
    Raises SeatsUnavailable listing seats that are held or sold."""
    ids = clean_seat_ids(seat_ids, limit=MAX_SEATS_PER_STAFF_ACTION)
    rules.get_event(event_id)
    with locking.locked_transaction():
        seats = rules.lock_event_seats(event_id, ids)
        at = rules.clock(now)
        lapsed = rules.lapsed_hold_ids(seats, at)
        busy = [
            s.pk
            for s in seats
            if s.state == SeatState.SOLD or (s.state == SeatState.HELD and s.hold_id not in lapsed)
        ]
        if busy:
            raise SeatsUnavailable("Held or sold seats cannot be blocked.", seats=busy)
        changing = [s for s in seats if s.state != SeatState.BLOCKED]
        if changing:
            rules.take_seats(
                event_id=event_id,
                free=changing,
                to=SeatState.BLOCKED,
                actor_id=actor.pk,
                cause=SeatChange.Cause.BLOCK,
                now=at,
            )
    return len(changing)


def unblock_seats(
    *, event_id: int, seat_ids: Sequence[int], actor: User, now: datetime | None = None
) -> int:
    """Puts blocked seats back on sale. Returns how many changed."""
    ids = clean_seat_ids(seat_ids, limit=MAX_SEATS_PER_STAFF_ACTION)
    rules.get_event(event_id)
    with locking.locked_transaction():
        seats = rules.lock_event_seats(event_id, ids)
        changing = [s for s in seats if s.state == SeatState.BLOCKED]
        if changing:
            rules.free_seats(
                event_id=event_id,
                seats=changing,
                actor_id=actor.pk,
                cause=SeatChange.Cause.UNBLOCK,
                now=rules.clock(now),
            )
    return len(changing)


def set_sale_state(*, event_id: int, sale_state: str) -> Event:
    """Opens or closes sales. A booking in flight commits only if the sale is still open.

    Raises InvalidRequest for an unknown state, NotFound for an unknown event, and Conflict
    when going back to draft once anyone has held or booked a seat (a draft's seat map can
    be regenerated, which would pull seats from under them).
    """
    if sale_state not in Event.SaleState.values:
        raise InvalidRequest(f"Unknown sale state {sale_state!r}.")
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise NotFound("No such event.")
        if (
            sale_state == Event.SaleState.DRAFT
            and event.sale_state != Event.SaleState.DRAFT
            and (Hold.objects.filter(event=event).exists() or event.bookings.exists())
        ):
            raise Conflict(
                "Customers have held or booked seats: the event cannot go back to draft."
            )
        if event.sale_state != sale_state:
            if event.sale_state == Event.SaleState.DRAFT:
                changes.recount_seats(event_id)  # a draft's seats may have been edited
            Event.objects.filter(pk=event_id).update(sale_state=sale_state)
            changes.commit_sale_state(event_id=event_id, sale_state=sale_state)
    return Event.objects.get(pk=event_id)
