"""Bookings: seats sold to a customer, from their hold or straight from the map."""

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import IntegrityError

from .. import locking
from ..errors import Conflict, InvalidRequest, NotFound, SeatsUnavailable
from ..models import Booking, BookingSeat, Hold, Seat, SeatChange, SeatState
from ..parsing import clean_seat_ids
from . import rules
from .holds import lock_open_hold

logger = logging.getLogger(__name__)


def book_seats(
    *,
    customer: User,
    event_id: int,
    seat_ids: Sequence[int] | None = None,
    hold_id: int | None = None,
    now: datetime | None = None,
) -> Booking:
    """Books the seats for the customer: seats they hold, or available seats directly.

    With `hold_id` and no `seat_ids`, books every seat of that hold. Seats of the customer's
    hold that are not booked stay held. Returns the booking.
    Raises InvalidRequest, NotFound, UnknownSeats, SaleNotOpen, SeatsUnavailable,
    LimitExceeded, Conflict or Busy.
    """
    if seat_ids is None and hold_id is None:
        raise InvalidRequest('Give "seats" (a list of seat ids) or "hold" (a hold id).')
    event = rules.get_event(event_id)
    rules.require_on_sale(event)
    with locking.locked_transaction():
        locking.lock_customer(customer.pk)
        hold = lock_open_hold(customer_id=customer.pk, event_id=event.pk, now=rules.clock(now))
        if hold_id is not None and (hold is None or hold.pk != hold_id):
            if not Hold.objects.filter(pk=hold_id, customer=customer, event=event).exists():
                raise NotFound("No such hold.")  # as for someone else's: existence not leaked
            raise Conflict("That hold is not active (it may have expired or been booked).")
        if seat_ids is not None:
            ids = clean_seat_ids(seat_ids)
        else:
            assert hold is not None  # hold_id matched the open hold
            ids = list(hold.seats.values_list("pk", flat=True))
            if not ids:
                raise Conflict("Your hold has no seats left to book.")
        seats = rules.lock_event_seats(event.pk, ids)
        at = rules.clock(now)  # read after the lock waits: an expiry passed meanwhile counts
        if hold is not None and not hold.is_active(at):
            if hold_id is not None:
                raise Conflict("Your hold has expired.")
            hold = None  # booking seats directly: a hold that lapsed meanwhile is no hold
        free, mine = rules.claim_seats(seats, own_hold=hold, now=at)
        rules.check_seat_limit(customer_id=customer.pk, event=event, adding=free, now=at)
        booking = Booking.objects.create(
            event=event,
            customer=customer,
            created_at=at,
            total=sum((s.price for s in seats), Decimal("0")),
        )
        _record_booked_seats(booking, seats)
        rules.take_seats(
            event_id=event.pk,
            free=free,
            mine=mine,
            to=SeatState.SOLD,
            own_hold=hold,
            own_hold_reason=Hold.EndReason.BOOKED,
            actor_id=customer.pk,
            cause=SeatChange.Cause.BOOK,
            now=at,
        )
    return booking


def _record_booked_seats(booking: Booking, seats: list[Seat]) -> None:
    """Call with the seat rows locked and checked. Should the database still refuse a second
    active booking of a seat, that is a bug above it: the customer gets a 409, not a 500."""
    # No savepoint: the error is re-raised as SeatsUnavailable, which rolls back the whole
    # booking transaction anyway.
    try:
        BookingSeat.objects.bulk_create(
            [BookingSeat(booking=booking, seat=s, price=s.price) for s in seats]
        )
    except IntegrityError as exc:
        # PostgreSQL names the constraint; SQLite names the column.
        if not any(
            name in str(exc) for name in ("one_active_booking_per_seat", "bookingseat.seat_id")
        ):
            raise
        logger.error(
            "The database refused a double sale that the seat locks let through "
            "(booking %s, seats %s)",
            booking.pk,
            [s.pk for s in seats],
            exc_info=True,
        )
        raise SeatsUnavailable(
            "Some of these seats are no longer available.", seats=[s.pk for s in seats]
        ) from exc


def cancel_booking(*, booking_id: int, actor: User, now: datetime | None = None) -> Booking:
    """Cancels the booking and puts its seats back on sale. Its customer or staff only.

    Returns the booking. Raises NotFound (no such booking, or not the actor's), Conflict
    (already cancelled) or Busy.
    """
    booking = Booking.objects.filter(pk=booking_id).first()
    if booking is None or not (actor.is_staff or booking.customer_id == actor.pk):
        raise NotFound("No such booking.")
    with locking.locked_transaction():
        locking.lock_customer(booking.customer_id)
        booking = Booking.objects.select_for_update().get(pk=booking.pk)
        if booking.is_cancelled:
            raise Conflict("This booking is already cancelled.")
        seat_ids = list(booking.items.filter(active=True).values_list("seat_id", flat=True))
        seats = locking.lock_seats(event_id=booking.event_id, seat_ids=seat_ids)
        at = rules.clock(now)
        booking.items.update(active=False)
        booking.cancelled_at = at
        booking.save(update_fields=["cancelled_at"])
        rules.free_seats(
            event_id=booking.event_id,
            seats=seats,
            actor_id=actor.pk,
            cause=SeatChange.Cause.CANCEL,
            now=at,
        )
    return booking
