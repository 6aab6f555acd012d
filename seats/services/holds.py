"""Holds: a customer's basket of seats for one event, theirs until it expires."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User

from events.models import Event

from .. import locking
from ..errors import Busy, Conflict, NotFound, SeatsUnavailable, UnknownSeats
from ..models import Hold, Seat, SeatChange, SeatState, visible_state
from ..parsing import clean_seat_ids
from . import rules

logger = logging.getLogger(__name__)


def lock_open_hold(*, customer_id: int, event_id: int, now: datetime) -> Hold | None:
    """Call with the customer row locked. Finds the customer's active hold for the event and
    locks it; None if there is none (or it ended while we waited for its lock)."""
    hold = Hold.objects.open_for(customer_id=customer_id, event_id=event_id, now=now)
    if hold is None:
        return None
    hold = locking.lock_holds([hold.pk])[hold.pk]
    return hold if hold.is_active(now) else None


def hold_seats(
    *, customer: User, event_id: int, seat_ids: Sequence[int], now: datetime | None = None
) -> Hold:
    """Adds the seats to the customer's hold for the event (creating the hold if needed).

    The hold's expiry is set when it is created and never extended. Seats the customer
    already holds are kept as they are. Returns the hold.
    Raises InvalidRequest, NotFound, UnknownSeats, SaleNotOpen, SeatsUnavailable,
    LimitExceeded or Busy.
    """
    ids = clean_seat_ids(seat_ids)
    event = rules.get_event(event_id)
    rules.require_on_sale(event)
    with locking.locked_transaction():
        locking.lock_customer(customer.pk)
        hold = lock_open_hold(customer_id=customer.pk, event_id=event.pk, now=rules.clock(now))
        seats = rules.lock_event_seats(event.pk, ids)
        at = rules.clock(now)  # read after the lock waits: an expiry passed meanwhile counts
        if hold is not None and not hold.is_active(at):
            hold = None
        free, _mine = rules.claim_seats(seats, own_hold=hold, now=at)
        hold = add_to_hold(customer=customer, event=event, hold=hold, free=free, now=at)
    return hold


def add_to_hold(
    *, customer: User, event: Event, hold: Hold | None, free: list[Seat], now: datetime
) -> Hold:
    """Call with the customer row, its open `hold` (None if it has none) and the seats
    locked, and the seats claimed as `free` (rules.claim_seats). Checks the customer's seat
    limit, creates the hold if needed and puts the seats in it. Returns the hold.
    Raises LimitExceeded or SaleNotOpen."""
    rules.check_seat_limit(customer_id=customer.pk, event=event, adding=free, now=now)
    if hold is None:
        hold = Hold.objects.create(
            event=event, customer=customer, created_at=now, expires_at=now + event.hold_duration
        )
    if free:
        rules.take_seats(
            event_id=event.pk,
            free=free,
            to=SeatState.HELD,
            hold=hold,
            actor_id=customer.pk,
            cause=SeatChange.Cause.HOLD,
            now=now,
        )
    return hold


def release_hold(
    *, hold_id: int, actor: User, seat_ids: Sequence[int] | None = None, now: datetime | None = None
) -> Hold:
    """Frees the hold's seats (all, or only `seat_ids`). Only its customer or staff may.

    The hold ends when it has no seats left. Returns the hold.
    Raises NotFound (no such hold, or not the actor's), Conflict (hold already ended),
    InvalidRequest / UnknownSeats for bad seat ids, or Busy.
    """
    wanted = None if seat_ids is None else set(clean_seat_ids(seat_ids))
    hold = Hold.objects.filter(pk=hold_id).first()
    if hold is None or not (actor.is_staff or hold.customer_id == actor.pk):
        raise NotFound("No such hold.")
    with locking.locked_transaction():
        locking.lock_customer(hold.customer_id)
        hold = locking.lock_holds([hold.pk])[hold.pk]
        if hold.ended_at is not None:
            raise Conflict(f"This hold has already ended ({hold.end_reason}).")
        seats = locking.lock_seats_of_holds([hold.pk])
        at = rules.clock(now)
        if wanted is not None:
            unknown = wanted - {s.pk for s in seats}
            if unknown:
                raise UnknownSeats("These seats are not in this hold.", seats=unknown)
            seats = [s for s in seats if s.pk in wanted]
        if seats:
            rules.free_seats(
                event_id=hold.event_id,
                seats=seats,
                seen=SeatState.HELD if hold.is_active(at) else SeatState.AVAILABLE,
                actor_id=actor.pk,
                cause=SeatChange.Cause.RELEASE,
                now=at,
            )
        rules.end_holds_left_empty([hold.pk], reason=Hold.EndReason.RELEASED, now=at)
        hold.refresh_from_db()
    return hold


@dataclass(frozen=True)
class Toggled:
    """What a click on a seat did: `held` it (into `hold`) or released it."""

    seat: Seat
    held: bool
    hold: Hold


def toggle_seat(
    *, customer: User, event_id: int, seat_id: int, now: datetime | None = None
) -> Toggled:
    """Holds the seat if it is free, or releases it if it is in the customer's own hold.

    Raises UnknownSeats (not a seat of this event), SeatsUnavailable (taken; the message
    says how), or whatever hold_seats and release_hold raise.
    """
    seat = Seat.objects.filter(pk=seat_id, event_id=event_id).first()
    if seat is None:
        raise UnknownSeats("That seat is not part of this event.")
    hold = Hold.objects.open_for(customer_id=customer.pk, event_id=event_id, now=rules.clock(now))
    if hold is not None and seat.hold_id == hold.pk:
        hold = release_hold(hold_id=hold.pk, actor=customer, seat_ids=[seat.pk], now=now)
        return Toggled(seat=seat, held=False, hold=hold)
    try:
        hold = hold_seats(customer=customer, event_id=event_id, seat_ids=[seat.pk], now=now)
    except SeatsUnavailable:
        raise SeatsUnavailable(
            _taken_message(seat, now=rules.clock(now)), seats=[seat.pk]
        ) from None
    return Toggled(seat=seat, held=True, hold=hold)


def _taken_message(seat: Seat, *, now: datetime) -> str:
    seat = Seat.objects.select_related("hold").get(pk=seat.pk)
    state = visible_state(
        seat.state,
        hold_expires_at=seat.hold.expires_at if seat.hold else None,
        hold_ended_at=seat.hold.ended_at if seat.hold else None,
        now=now,
    )
    if state == SeatState.SOLD:
        return f"{seat.place} is already sold."
    if state == SeatState.HELD:
        return f"{seat.place} is being held by another customer. It frees up if they don't book it."
    if state == SeatState.BLOCKED:
        return f"{seat.place} is not for sale."
    return f"Sorry, someone else just took {seat.place}."


def expire_holds(*, now: datetime | None = None, limit: int = 500) -> int:
    """Releases the seats of holds past their expiry and ends those holds.

    One transaction (one version) per event. Returns the number of seats released.
    """
    at = rules.clock(now)
    due = list(Hold.objects.due(at).order_by("expires_at").values_list("pk", "event_id")[:limit])
    by_event: dict[int, list[int]] = {}
    for hold_id, event_id in due:
        by_event.setdefault(event_id, []).append(hold_id)
    released = 0
    for event_id, hold_ids in by_event.items():
        try:
            released += _expire_event_holds(event_id=event_id, hold_ids=hold_ids, now=at)
        except Busy:
            # Someone holds these seats longer than the lock timeout; the next sweep retries.
            # The other events' holds must not wait for this one.
            logger.warning("Expired holds of event %s are busy; retrying next sweep", event_id)
    return released


def _expire_event_holds(*, event_id: int, hold_ids: list[int], now: datetime) -> int:
    with locking.locked_transaction():
        holds = locking.lock_holds(hold_ids)
        expired = [h.pk for h in holds.values() if h.is_due(now)]
        seats = locking.lock_seats_of_holds(expired)
        if seats:
            rules.free_seats(
                event_id=event_id,
                seats=seats,
                seen=SeatState.HELD,
                actor_id=None,
                cause=SeatChange.Cause.EXPIRE,
                now=now,
            )
        Hold.objects.filter(pk__in=expired).update(ended_at=now, end_reason=Hold.EndReason.EXPIRED)
    return len(seats)
