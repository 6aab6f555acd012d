"""The only write paths for seat state.

Each service runs in one transaction that locks what it changes (seats.locking), re-checks
every seat under the lock, and writes through seats.changes.commit_transitions. Services take
`now=` so tests control the clock. They raise seats.errors.BookingError subclasses, which
views turn into 4xx/503 answers; a service that raises has changed nothing.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from events.models import Event

from .changes import Transition, commit_sale_state, commit_transitions, recount_seats
from .errors import (
    Busy,
    Conflict,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    SaleNotOpen,
    SeatsUnavailable,
    UnknownSeats,
)
from .locking import (
    lock_customer,
    lock_holds,
    lock_seats,
    lock_seats_of_holds,
    locked_transaction,
)
from .models import Booking, BookingSeat, Hold, Seat, SeatState

logger = logging.getLogger(__name__)

MAX_SEATS_PER_REQUEST = 100
# Largest primary key (bigint); a larger id in an `IN (...)` query fails in the driver.
_MAX_ID = 2**63 - 1


# --- input checks ---------------------------------------------------------------------


def clean_seat_ids(seat_ids: object, *, limit: int = MAX_SEATS_PER_REQUEST) -> list[int]:
    """Returns the ids as a list of ints. Raises InvalidRequest for anything else: not a
    list, not integers, duplicates, none, or more than `limit`."""
    if not isinstance(seat_ids, list | tuple):
        raise InvalidRequest('"seats" must be a list of seat ids.')
    if not seat_ids:
        raise InvalidRequest("Choose at least one seat.")
    if any(
        isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= _MAX_ID for s in seat_ids
    ):
        raise InvalidRequest("Seat ids must be positive integers.")
    if len(set(seat_ids)) != len(seat_ids):
        raise InvalidRequest("A seat is listed more than once.")
    if len(seat_ids) > limit:
        raise InvalidRequest(f"At most {limit} seats per request.")
    return list(seat_ids)


def _get_event(event_id: int) -> Event:
    try:
        return Event.objects.get(pk=event_id)
    except Event.DoesNotExist:
        raise NotFound("No such event.") from None


def _require_on_sale(event: Event) -> None:
    if not event.is_on_sale:
        raise SaleNotOpen(f"Sales for {event.name} are {event.get_sale_state_display().lower()}.")


def _lock_event_seats(event_id: int, seat_ids: Sequence[int]) -> list[Seat]:
    seats = lock_seats(event_id=event_id, seat_ids=seat_ids)
    missing = set(seat_ids) - {s.pk for s in seats}
    if missing:
        raise UnknownSeats("These seats are not part of this event.", seats=missing)
    return seats


def _open_hold(*, customer_id: int, event_id: int, now: datetime) -> Hold | None:
    return (
        Hold.objects.filter(
            customer_id=customer_id, event_id=event_id, ended_at__isnull=True, expires_at__gt=now
        )
        .order_by("-expires_at")
        .first()
    )


def _expired_hold_ids(seats: Iterable[Seat], now: datetime) -> set[int]:
    hold_ids = {s.hold_id for s in seats if s.hold_id}
    if not hold_ids:
        return set()
    return set(
        Hold.objects.filter(pk__in=hold_ids)
        .filter(Q(expires_at__lte=now) | Q(ended_at__isnull=False))
        .values_list("pk", flat=True)
    )


def _seats_owned(*, customer_id: int, event_id: int, now: datetime) -> int:
    """Seats this customer holds (unexpired) or has booked for the event."""
    held = Seat.objects.filter(
        event_id=event_id,
        hold__customer_id=customer_id,
        hold__ended_at__isnull=True,
        hold__expires_at__gt=now,
    ).count()
    booked = BookingSeat.objects.filter(
        booking__event_id=event_id, booking__customer_id=customer_id, active=True
    ).count()
    return held + booked


def _check_seat_limit(*, customer_id: int, event: Event, adding: list[Seat], now: datetime) -> None:
    """Call with the customer row locked. Raises LimitExceeded if the customer would hold
    plus own more than the event allows."""
    owned = _seats_owned(customer_id=customer_id, event_id=event.pk, now=now)
    if owned + len(adding) > event.max_seats_per_customer:
        raise LimitExceeded(
            f"You can have at most {event.max_seats_per_customer} seats for this event "
            f"(you have {owned}).",
            seats=[s.pk for s in adding],
        )


def _claim_seats(
    seats: list[Seat], *, own_hold: Hold | None, now: datetime
) -> tuple[list[Seat], list[Seat]]:
    """Call with the seat rows locked. Splits the seats into (free, already the customer's).

    A seat held under an expired hold counts as free. Raises SeatsUnavailable for the rest.
    """
    expired = _expired_hold_ids(seats, now)
    free, mine, taken = [], [], []
    for seat in seats:
        if own_hold is not None and seat.hold_id == own_hold.pk:
            mine.append(seat)
        elif seat.state == SeatState.AVAILABLE or (
            seat.state == SeatState.HELD and seat.hold_id in expired
        ):
            free.append(seat)
        else:
            taken.append(seat.pk)
    if taken:
        raise SeatsUnavailable("Some of these seats are no longer available.", seats=taken)
    return free, mine


def _seen_state(seat: Seat) -> str:
    # Seats taken over from an expired hold looked free to viewers already.
    return SeatState.AVAILABLE if seat.state == SeatState.HELD else seat.state


def _end_holds_left_empty(hold_ids: Iterable[int], *, reason: str, now: datetime) -> None:
    hold_ids = set(hold_ids)
    if not hold_ids:
        return
    still_used = set(
        Seat.objects.filter(hold_id__in=hold_ids).values_list("hold_id", flat=True).distinct()
    )
    # Called with seat rows locked, so waiting here for a hold's lock would break the lock
    # order: the sweeper locks an expired hold first, then waits for our seats (deadlock).
    # A hold locked by someone else is skipped; whoever holds it (sweeper, or its customer
    # releasing it) ends it.
    ending = list(
        Hold.objects.select_for_update(skip_locked=True)
        .filter(pk__in=hold_ids - still_used, ended_at__isnull=True)
        .values_list("pk", flat=True)
    )
    Hold.objects.filter(pk__in=ending).update(ended_at=now, end_reason=reason)


# --- customers ------------------------------------------------------------------------


def hold_seats(*, customer, event_id: int, seat_ids: object, now: datetime | None = None) -> Hold:
    """Adds the seats to the customer's hold for the event (creating the hold if needed).

    The hold's expiry is set when it is created and never extended. Seats the customer
    already holds are kept as they are. Returns the hold.
    Raises InvalidRequest, NotFound, UnknownSeats, SaleNotOpen, SeatsUnavailable,
    LimitExceeded or Busy.
    """
    now = now or timezone.now()
    seat_ids = clean_seat_ids(seat_ids)
    event = _get_event(event_id)
    _require_on_sale(event)
    with locked_transaction():
        lock_customer(customer.pk)
        hold = _open_hold(customer_id=customer.pk, event_id=event.pk, now=now)
        if hold is not None:
            hold = lock_holds([hold.pk])[hold.pk]
            if not hold.is_active(now):
                hold = None
        seats = _lock_event_seats(event.pk, seat_ids)
        free, _mine = _claim_seats(seats, own_hold=hold, now=now)
        _check_seat_limit(customer_id=customer.pk, event=event, adding=free, now=now)
        if hold is None:
            hold = Hold.objects.create(
                event=event,
                customer=customer,
                created_at=now,
                expires_at=now + event.hold_duration,
            )
        if free:
            replaced = {s.hold_id for s in free if s.hold_id}
            commit_transitions(
                event_id=event.pk,
                transitions=[
                    Transition(
                        seat=s, to_state=SeatState.HELD, hold=hold, from_state=_seen_state(s)
                    )
                    for s in free
                ],
                actor_id=customer.pk,
                cause="hold",
                now=now,
                require_on_sale=True,
                after_seats_written=lambda: _end_holds_left_empty(
                    replaced, reason=Hold.EndReason.EXPIRED, now=now
                ),
            )
    return hold


def release_hold(
    *,
    hold_id: int,
    actor,
    seat_ids: object = None,
    now: datetime | None = None,
) -> Hold:
    """Frees the hold's seats (all, or only `seat_ids`). Only its customer or staff may.

    The hold ends when it has no seats left. Returns the hold.
    Raises NotFound (no such hold, or not the actor's), Conflict (hold already ended),
    InvalidRequest / UnknownSeats for bad seat ids, or Busy.
    """
    now = now or timezone.now()
    wanted = None if seat_ids is None else set(clean_seat_ids(seat_ids))
    hold = Hold.objects.filter(pk=hold_id).first()
    if hold is None or not (actor.is_staff or hold.customer_id == actor.pk):
        raise NotFound("No such hold.")
    with locked_transaction():
        lock_customer(hold.customer_id)
        hold = lock_holds([hold.pk])[hold.pk]
        if hold.ended_at is not None:
            raise Conflict(f"This hold has already ended ({hold.end_reason}).")
        seats = lock_seats_of_holds([hold.pk])
        if wanted is not None:
            unknown = wanted - {s.pk for s in seats}
            if unknown:
                raise UnknownSeats("These seats are not in this hold.", seats=unknown)
            seats = [s for s in seats if s.pk in wanted]
        if seats:
            commit_transitions(
                event_id=hold.event_id,
                transitions=[
                    Transition(
                        seat=s,
                        to_state=SeatState.AVAILABLE,
                        from_state=SeatState.HELD if hold.is_active(now) else SeatState.AVAILABLE,
                    )
                    for s in seats
                ],
                actor_id=actor.pk,
                cause="release",
                now=now,
                require_on_sale=False,
            )
        _end_holds_left_empty([hold.pk], reason=Hold.EndReason.RELEASED, now=now)
        hold.refresh_from_db()
    return hold


def book_seats(
    *,
    customer,
    event_id: int,
    seat_ids: object = None,
    hold_id: int | None = None,
    now: datetime | None = None,
) -> Booking:
    """Books the seats for the customer: seats they hold, or available seats directly.

    With `hold_id` and no `seat_ids`, books every seat of that hold. Seats of the customer's
    hold that are not booked stay held. Returns the booking.
    Raises InvalidRequest, NotFound, UnknownSeats, SaleNotOpen, SeatsUnavailable,
    LimitExceeded or Busy.
    """
    now = now or timezone.now()
    if seat_ids is None and hold_id is None:
        raise InvalidRequest('Give "seats" (a list of seat ids) or "hold" (a hold id).')
    if hold_id is not None and (
        isinstance(hold_id, bool) or not isinstance(hold_id, int) or not 0 < hold_id < 2**63
    ):
        raise InvalidRequest('"hold" must be a hold id.')
    event = _get_event(event_id)
    _require_on_sale(event)
    with locked_transaction():
        lock_customer(customer.pk)
        hold = _open_hold(customer_id=customer.pk, event_id=event.pk, now=now)
        if hold_id is not None and (hold is None or hold.pk != hold_id):
            if not Hold.objects.filter(pk=hold_id, customer=customer, event=event).exists():
                raise NotFound("No such hold.")  # as for someone else's: existence not leaked
            raise Conflict("That hold is not active (it may have expired or been booked).")
        if hold is not None:
            hold = lock_holds([hold.pk])[hold.pk]
            if not hold.is_active(now):
                raise Conflict("Your hold has expired.")
        if seat_ids is None:
            seat_ids = list(hold.seats.values_list("pk", flat=True))
        seat_ids = clean_seat_ids(seat_ids)
        seats = _lock_event_seats(event.pk, seat_ids)
        free, mine = _claim_seats(seats, own_hold=hold, now=now)
        _check_seat_limit(customer_id=customer.pk, event=event, adding=free, now=now)
        booking = Booking.objects.create(
            event=event,
            customer=customer,
            created_at=now,
            total=sum((s.price for s in seats), Decimal("0")),
        )
        _record_booked_seats(booking, seats)
        replaced = {s.hold_id for s in seats if s.hold_id}

        def end_emptied_holds() -> None:
            own = {hold.pk} if hold else set()
            _end_holds_left_empty(replaced - own, reason=Hold.EndReason.EXPIRED, now=now)
            _end_holds_left_empty(own, reason=Hold.EndReason.BOOKED, now=now)

        commit_transitions(
            event_id=event.pk,
            transitions=[
                Transition(seat=s, to_state=SeatState.SOLD, from_state=_seen_state(s)) for s in free
            ]
            + [Transition(seat=s, to_state=SeatState.SOLD) for s in mine],
            actor_id=customer.pk,
            cause="book",
            now=now,
            require_on_sale=True,
            after_seats_written=end_emptied_holds,
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


def cancel_booking(*, booking_id: int, actor, now: datetime | None = None) -> Booking:
    """Cancels the booking and puts its seats back on sale. Its customer or staff only.

    Returns the booking. Raises NotFound (no such booking, or not the actor's), Conflict
    (already cancelled) or Busy.
    """
    now = now or timezone.now()
    booking = Booking.objects.filter(pk=booking_id).first()
    if booking is None or not (actor.is_staff or booking.customer_id == actor.pk):
        raise NotFound("No such booking.")
    with locked_transaction():
        lock_customer(booking.customer_id)
        booking = Booking.objects.select_for_update().get(pk=booking.pk)
        if booking.is_cancelled:
            raise Conflict("This booking is already cancelled.")
        seat_ids = list(booking.items.filter(active=True).values_list("seat_id", flat=True))
        seats = lock_seats(event_id=booking.event_id, seat_ids=seat_ids)
        booking.items.update(active=False)
        booking.cancelled_at = now
        booking.save(update_fields=["cancelled_at"])
        commit_transitions(
            event_id=booking.event_id,
            transitions=[Transition(seat=s, to_state=SeatState.AVAILABLE) for s in seats],
            actor_id=actor.pk,
            cause="cancel",
            now=now,
            require_on_sale=False,
        )
    return booking


# --- sweeper --------------------------------------------------------------------------


def expire_holds(*, now: datetime | None = None, limit: int = 500) -> int:
    """Releases the seats of holds past their expiry and ends those holds.

    One transaction (one version) per event. Returns the number of seats released.
    """
    now = now or timezone.now()
    due = list(
        Hold.objects.filter(ended_at__isnull=True, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", "event_id")[:limit]
    )
    by_event: dict[int, list[int]] = {}
    for hold_id, event_id in due:
        by_event.setdefault(event_id, []).append(hold_id)
    released = 0
    for event_id, hold_ids in by_event.items():
        try:
            released += _expire_event_holds(event_id=event_id, hold_ids=hold_ids, now=now)
        except Busy:
            # Someone holds these seats longer than the lock timeout; the next sweep retries.
            # The other events' holds must not wait for this one.
            logger.warning("Expired holds of event %s are busy; retrying next sweep", event_id)
    return released


def _expire_event_holds(*, event_id: int, hold_ids: list[int], now: datetime) -> int:
    with locked_transaction():
        holds = lock_holds(hold_ids)
        expired = [h.pk for h in holds.values() if h.ended_at is None and h.expires_at <= now]
        seats = lock_seats_of_holds(expired)
        if seats:
            commit_transitions(
                event_id=event_id,
                transitions=[
                    Transition(seat=s, to_state=SeatState.AVAILABLE, from_state=SeatState.HELD)
                    for s in seats
                ],
                actor_id=None,
                cause="expire",
                now=now,
                require_on_sale=False,
            )
        Hold.objects.filter(pk__in=expired).update(ended_at=now, end_reason=Hold.EndReason.EXPIRED)
    return len(seats)


# --- staff ----------------------------------------------------------------------------


def block_seats(*, event_id: int, seat_ids: object, actor, now: datetime | None = None) -> int:
    """Takes available seats off sale. Returns how many changed.
    Raises SeatsUnavailable listing seats that are held or sold."""
    return _set_blocked(event_id=event_id, seat_ids=seat_ids, actor=actor, now=now, block=True)


def unblock_seats(*, event_id: int, seat_ids: object, actor, now: datetime | None = None) -> int:
    """Puts blocked seats back on sale. Returns how many changed."""
    return _set_blocked(event_id=event_id, seat_ids=seat_ids, actor=actor, now=now, block=False)


def _set_blocked(
    *, event_id: int, seat_ids: object, actor, now: datetime | None, block: bool
) -> int:
    now = now or timezone.now()
    # Below SQLite's 32,766 bound parameters per statement.
    seat_ids = clean_seat_ids(seat_ids, limit=20_000)
    _get_event(event_id)
    with locked_transaction():
        seats = _lock_event_seats(event_id, seat_ids)
        if block:
            expired = _expired_hold_ids(seats, now)
            busy = [
                s.pk
                for s in seats
                if s.state == SeatState.SOLD
                or (s.state == SeatState.HELD and s.hold_id not in expired)
            ]
            if busy:
                raise SeatsUnavailable("Held or sold seats cannot be blocked.", seats=busy)
            changing = [s for s in seats if s.state != SeatState.BLOCKED]
            transitions = [
                Transition(seat=s, to_state=SeatState.BLOCKED, from_state=_seen_state(s))
                for s in changing
            ]
        else:
            changing = [s for s in seats if s.state == SeatState.BLOCKED]
            transitions = [Transition(seat=s, to_state=SeatState.AVAILABLE) for s in changing]
        if transitions:
            replaced = {s.hold_id for s in changing if s.hold_id}
            commit_transitions(
                event_id=event_id,
                transitions=transitions,
                actor_id=actor.pk,
                cause="block" if block else "unblock",
                now=now,
                require_on_sale=False,
                after_seats_written=lambda: _end_holds_left_empty(
                    replaced, reason=Hold.EndReason.EXPIRED, now=now
                ),
            )
    return len(transitions)


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
                recount_seats(event_id)  # a draft's seats may have been edited in the admin
            Event.objects.filter(pk=event_id).update(sale_state=sale_state)
            commit_sale_state(event_id=event_id, sale_state=sale_state)
    return Event.objects.get(pk=event_id)


@dataclass(frozen=True)
class SectionSpec:
    name: str
    rows: int
    seats_per_row: int
    price: Decimal


def row_label(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    label = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        label = chr(ord("A") + rem) + label
    return label


def generate_seat_map(*, event_id: int, sections: Sequence[SectionSpec]) -> int:
    """Creates the seats of new sections (rows x seats per row at the section's price).

    Only while the event is a draft, so no viewer's map goes stale. Returns seats created.
    Raises Conflict if the event is not a draft or a section name is already used,
    InvalidRequest for sizes out of range.
    """
    event = _get_event(event_id)
    if event.sale_state != Event.SaleState.DRAFT:
        raise Conflict("Seats can only be generated while the event is a draft.")
    seats = []
    for spec in sections:
        if not spec.name.strip():
            raise InvalidRequest("A section needs a name.")
        if not (1 <= spec.rows <= 200 and 1 <= spec.seats_per_row <= 500):
            raise InvalidRequest("A section has 1-200 rows of 1-500 seats.")
        if spec.price < 0:
            raise InvalidRequest("Prices cannot be negative.")
        for r in range(spec.rows):
            for n in range(1, spec.seats_per_row + 1):
                seats.append(
                    Seat(
                        event=event,
                        section=spec.name.strip(),
                        row_label=row_label(r),
                        number=n,
                        x=n,
                        y=r + 1,
                        price=spec.price,
                    )
                )
    if len(seats) > 50_000:
        raise InvalidRequest("At most 50,000 seats per event.")
    names = {spec.name.strip() for spec in sections}
    with transaction.atomic():
        # Locked and checked again: opening the sale meanwhile must not let seats slip in.
        locked = Event.objects.select_for_update().get(pk=event.pk)
        if locked.sale_state != Event.SaleState.DRAFT:
            raise Conflict("Seats can only be generated while the event is a draft.")
        if Seat.objects.filter(event=event, section__in=names).exists() or len(names) != len(
            sections
        ):
            raise Conflict("Each section name may be used once per event.")
        Seat.objects.bulk_create(seats, batch_size=2000)
        recount_seats(event.pk)
    return len(seats)
