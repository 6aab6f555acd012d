"""Bookings: seats sold to a customer, from their hold or straight from the map.

On PostgreSQL a booking is one call of the database function seatline_book_seats
(migration 0005): the same locks in the same order, the same rules and the same rows as the
Python path below, in one round trip instead of about fifteen. The Python path serves SQLite
(the embedded default) and PostgreSQL with BOOKINGS_IN_DATABASE off; the tests run every
booking rule through both (tests/seats/services/test_bookings.py).
"""

import json
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, IntegrityError, connection, transaction

from events.models import Event

from .. import changes, idempotency, locking
from ..errors import (
    BookingError,
    Conflict,
    InvalidRequest,
    NotFound,
    SaleNotOpen,
    SeatsUnavailable,
    UnknownSeats,
)
from ..models import Booking, BookingSeat, Hold, Seat, SeatChange, SeatState, seat_features
from ..parsing import clean_seat_ids
from ..payloads import public_seat
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
    hide_drafts: bool = False,
    once: idempotency.Claim | None = None,
) -> Booking:
    """Books the seats for the customer: seats they hold, or available seats directly.

    With `hold_id` and no `seat_ids`, books every seat of that hold. Seats of the customer's
    hold that are not booked stay held. `hide_drafts` answers a draft event as NotFound (as
    the API does for customers), not SaleNotOpen. Returns the booking, with
    `booked_seat_ids` set.

    `once` (only where bookings_in_database()): the request's Idempotency-Key, claimed in
    the same statement, which stores the API's answer with the booking and sets it as the
    booking's `answer`. Raises idempotency.Replayed if the key was answered meanwhile and
    IdempotencyMismatch if it answered another request; a refusal stores nothing.

    Raises InvalidRequest, NotFound, UnknownSeats, SaleNotOpen, SeatsUnavailable,
    LimitExceeded, Conflict or Busy.
    """
    ids = _requested_seats(seat_ids, hold_id)
    if bookings_in_database():
        return _book_in_database(
            customer=customer,
            event_id=event_id,
            seat_ids=ids,
            hold_id=hold_id,
            now=now,
            hide_drafts=hide_drafts,
            once=once,
        )
    if once is not None:
        raise ValueError("Only the database function stores an answer with the booking")
    event = rules.get_event(event_id)
    if hide_drafts and event.sale_state == Event.SaleState.DRAFT:
        raise _refused("no_event")
    rules.require_on_sale(event)
    with locking.locked_transaction():
        locking.lock_customer(customer.pk)
        hold = lock_open_hold(customer_id=customer.pk, event_id=event.pk, now=rules.clock(now))
        if hold_id is not None and (hold is None or hold.pk != hold_id):
            if not Hold.objects.filter(pk=hold_id, customer=customer, event=event).exists():
                raise _refused("no_hold")  # as for someone else's: existence not leaked
            raise _refused("hold_not_active")
        if ids is None:
            assert hold is not None  # hold_id matched the open hold
            ids = list(hold.seats.values_list("pk", flat=True))
            if not ids:
                raise _refused("hold_empty")
        seats = rules.lock_event_seats(event.pk, ids)
        at = rules.clock(now)  # read after the lock waits: an expiry passed meanwhile counts
        if hold is not None and not hold.is_active(at):
            if hold_id is not None:
                raise _refused("hold_expired")
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
    booking.booked_seat_ids = [s.pk for s in seats]
    return booking


def _requested_seats(seat_ids: Sequence[int] | None, hold_id: int | None) -> list[int] | None:
    """The seat ids asked for, checked; None to book the hold's. Raises InvalidRequest."""
    if seat_ids is None and hold_id is None:
        raise InvalidRequest('Give "seats" (a list of seat ids) or "hold" (a hold id).')
    return clean_seat_ids(seat_ids) if seat_ids is not None else None


def bookings_in_database() -> bool:
    """Whether book_seats runs as the database function (PostgreSQL, BOOKINGS_IN_DATABASE)."""
    return connection.vendor == "postgresql" and settings.BOOKINGS_IN_DATABASE


# The SQLSTATE seatline_book_seats raises a refusal with; its detail is JSON.
REFUSED = "SL001"


def _book_in_database(
    *,
    customer: User,
    event_id: int,
    seat_ids: list[int] | None,
    hold_id: int | None,
    now: datetime | None,
    hide_drafts: bool,
    once: idempotency.Claim | None,
) -> Booking:
    """book_seats as one statement. Outside a transaction the statement commits on its own
    (one round trip); inside one it runs in a savepoint, so a refusal leaves the caller's
    transaction usable."""
    call = booking_statement(
        customer_id=customer.pk,
        event_id=event_id,
        seat_ids=seat_ids,
        hold_id=hold_id,
        now=now,
        hide_drafts=hide_drafts,
        once=once,
    )
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with locking.transient_faults_as_busy():
        try:
            with savepoint, connection.cursor() as cursor:
                cursor.execute(call.sql, call.params)
                row = cursor.fetchone()
        except DatabaseError as exc:
            refusal = statement_refusal(exc.__cause__, seat_ids)
            if refusal is None:
                raise
            raise refusal from None
    assert row is not None
    # Django has psycopg hand jsonb over as text (its JSONField decodes it).
    booking = booked(json.loads(row[0]), customer=customer, event_id=event_id, once=once)
    assert booking.delta is not None  # set by booked
    changes.announce_on_commit(booking.delta)
    return booking


@dataclass(frozen=True)
class Statement:
    """The SQL of one booking and its parameters (psycopg's %s placeholders)."""

    sql: str
    params: list[Any]


def booking_statement(
    *,
    customer_id: int,
    event_id: int,
    seat_ids: Sequence[int] | None,
    hold_id: int | None,
    now: datetime | None = None,
    hide_drafts: bool,
    once: idempotency.Claim | None = None,
) -> Statement:
    """The statement that makes a booking on PostgreSQL (seatline_book_seats, or with `once`
    seatline_book_seats_once), run on its own: it commits itself. Its one row's one column
    is the jsonb that `booked` reads; a refusal is an error `statement_refusal` reads.

    Raises InvalidRequest for seats asked for wrongly, as `book_seats` does."""
    params: list[Any] = [
        customer_id,
        event_id,
        _requested_seats(seat_ids, hold_id),
        hold_id,
        now,
        hide_drafts,
        locking.lock_timeout(),
    ]
    call = "seatline_book_seats(%s, %s, %s::bigint[], %s, %s, %s, %s)"
    if once is not None:
        expired_before = once.expired_before(rules.clock(now))
        params = [once.key, once.fingerprint, expired_before, *params]
        call = "seatline_book_seats_once(%s, %s, %s, %s, %s, %s::bigint[], %s, %s, %s, %s)"
    return Statement(f"SELECT {call}", params)


def statement_refusal(
    error: BaseException | None, seat_ids: list[int] | None
) -> BookingError | None:
    """The BookingError for a booking statement's error (psycopg's): a refusal of
    seatline_book_seats, or the database refusing a second active booking of a seat; None
    for any other fault."""
    if isinstance(error, psycopg.errors.UniqueViolation):
        return _double_sale_refused(error, seat_ids or [])
    if isinstance(error, psycopg.Error):
        return _refusal(error)
    return None


def booked(
    done: dict[str, Any],
    *,
    customer: User,
    event_id: int,
    once: idempotency.Claim | None = None,
) -> Booking:
    """The booking a booking statement made, from its jsonb result: with `booked_seat_ids`,
    `answer` (the stored API answer, with `once`) and `delta` (what to announce once it
    has committed) set.

    Raises idempotency.Replayed if the statement found `once`'s key already answered."""
    if "stored" in done:
        assert once is not None
        answered = done["stored"]
        raise idempotency.Replayed(
            idempotency.stored(
                fingerprint=once.fingerprint,
                stored_fingerprint=answered["fingerprint"],
                status=answered["status"],
                body=answered["body"],
            )
        )
    booking = Booking(
        pk=done["booking"],
        event_id=event_id,
        customer=customer,
        created_at=datetime.fromisoformat(done["created_at"]),
        total=Decimal(done["total"]),
        cancelled_at=None,
    )
    booking._state.adding = False
    booking._state.db = connection.alias
    seats = done["seats"]
    booking.booked_seat_ids = [seat["id"] for seat in seats]
    booking.answer = done.get("answer")
    booking.delta = {
        "event": event_id,
        "version": done["version"],
        "seats": [
            public_seat(
                id=seat["id"],
                section=seat["section"],
                row_label=seat["row_label"],
                number=seat["number"],
                x=seat["x"],
                y=seat["y"],
                price=seat["price"],
                state=seat["state"],
                features=seat_features(
                    wheelchair=seat["wheelchair"],
                    companion=seat["companion"],
                    restricted_view=seat["restricted_view"],
                ),
            )
            for seat in seats
        ],
        "counts": done["counts"],
    }
    return booking


def _refusal(error: psycopg.Error) -> BookingError | None:
    """The BookingError for a refusal raised by seatline_book_seats; None for other faults.
    The messages are the Python path's."""
    if error.sqlstate != REFUSED:
        return None
    detail = json.loads(error.diag.message_detail or "{}")
    code = detail.get("code")
    seats = detail.get("seats") or []
    if code in _REFUSALS:
        return _refused(code, seats=seats)
    if code == "sale_not_open":
        state = Event.SaleState(detail["sale_state"]).label.lower()
        return SaleNotOpen(f"Sales for {detail['name']} are {state}.")
    if code == "limit_exceeded":
        return rules.limit_exceeded(maximum=detail["max"], owned=detail["owned"], seats=seats)
    raise ValueError(f"seatline_book_seats refused with an unknown code: {detail!r}")


def _refused(code: str, *, seats: Sequence[int] = ()) -> BookingError:
    """The refusal `code` of both paths (the database function names its own by code)."""
    error, message = _REFUSALS[code]
    return error(message, seats=seats)


# Refusals whose answer is fixed, by the code the database function raises them with; the
# seat rules shared with holds raise theirs in seats.services.rules.
_REFUSALS: dict[str, tuple[type[BookingError], str]] = {
    "no_event": (NotFound, "No such event."),
    "sale_closed": (SaleNotOpen, "Sales for this event are not open."),
    "no_hold": (NotFound, "No such hold."),
    "hold_not_active": (Conflict, "That hold is not active (it may have expired or been booked)."),
    "hold_empty": (Conflict, "Your hold has no seats left to book."),
    "hold_expired": (Conflict, "Your hold has expired."),
    "unknown_seats": (UnknownSeats, "These seats are not part of this event."),
    "seats_unavailable": (SeatsUnavailable, "Some of these seats are no longer available."),
}


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
        _refuse_double_sale(exc, [s.pk for s in seats])
        raise


def _refuse_double_sale(exc: IntegrityError, seat_ids: list[int]) -> None:
    """Raises SeatsUnavailable (logged as the bug it is) if `exc` is the database refusing
    a second active booking of a seat; returns otherwise."""
    refusal = _double_sale_refused(exc, seat_ids)
    if refusal is not None:
        raise refusal from exc


def _double_sale_refused(exc: BaseException, seat_ids: list[int]) -> BookingError | None:
    """SeatsUnavailable, logged as the bug it is, if `exc` is the database refusing a
    second active booking of a seat (the seat locks should have stopped it); else None."""
    # PostgreSQL names the constraint; SQLite names the column.
    if not any(name in str(exc) for name in ("one_active_booking_per_seat", "bookingseat.seat_id")):
        return None
    logger.error(
        "The database refused a double sale that the seat locks let through (seats %s)",
        seat_ids,
        exc_info=exc,
    )
    return SeatsUnavailable("Some of these seats are no longer available.", seats=seat_ids)


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
