"""Rules every write path shares: finding the event, claiming seats under their locks, the
per-customer seat limit, and ending holds their seats have left.

Helpers here that read or write seats assume the caller holds the locks they name.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db.models import Func, IntegerField, QuerySet, Subquery
from django.utils import timezone

from events.models import Event

from .. import changes, locking
from ..changes import Transition
from ..errors import LimitExceeded, NotFound, SaleNotOpen, SeatsUnavailable, UnknownSeats
from ..models import BookingSeat, Hold, Seat, SeatChange, SeatState


def get_event(event_id: int) -> Event:
    try:
        return Event.objects.get(pk=event_id)
    except Event.DoesNotExist:
        raise NotFound("No such event.") from None


def require_on_sale(event: Event) -> None:
    if not event.is_on_sale:
        raise SaleNotOpen(f"Sales for {event.name} are {event.get_sale_state_display().lower()}.")


def clock(now: datetime | None) -> datetime:
    """The time a service decides by: `now` when the caller fixed it (tests), else the clock.

    Services call this once they hold their locks, so a request that waited for a lock
    judges holds by the time it acts, not by when it arrived.
    """
    return now if now is not None else timezone.now()


def lock_event_seats(event_id: int, seat_ids: Sequence[int]) -> list[Seat]:
    """Locks the seats (primary-key order). Raises UnknownSeats for ids not of this event."""
    seats = locking.lock_seats(event_id=event_id, seat_ids=seat_ids)
    missing = set(seat_ids) - {s.pk for s in seats}
    if missing:
        raise UnknownSeats("These seats are not part of this event.", seats=missing)
    return seats


def lapsed_hold_ids(seats: Iterable[Seat], now: datetime) -> set[int]:
    """Of the holds these seats are under, those that no longer hold them."""
    hold_ids = {s.hold_id for s in seats if s.hold_id}
    if not hold_ids:
        return set()
    return set(Hold.objects.filter(pk__in=hold_ids).lapsed(now).values_list("pk", flat=True))


def claim_seats(
    seats: list[Seat], *, own_hold: Hold | None, now: datetime
) -> tuple[list[Seat], list[Seat]]:
    """Call with the seat rows locked. Splits the seats into (free, already the customer's).

    A seat held under a lapsed hold counts as free. Raises SeatsUnavailable for the rest.
    """
    lapsed = lapsed_hold_ids(seats, now)
    free, mine, taken = [], [], []
    for seat in seats:
        if own_hold is not None and seat.hold_id == own_hold.pk:
            mine.append(seat)
        elif seat.state == SeatState.AVAILABLE or (
            seat.state == SeatState.HELD and seat.hold_id in lapsed
        ):
            free.append(seat)
        else:
            taken.append(seat.pk)
    if taken:
        raise SeatsUnavailable("Some of these seats are no longer available.", seats=taken)
    return free, mine


def seen_state(seat: Seat) -> str:
    """What viewers saw of a seat about to be taken: one under a lapsed hold looked free."""
    return SeatState.AVAILABLE if seat.state == SeatState.HELD else seat.state


def take_seats(
    *,
    event_id: int,
    free: list[Seat],
    to: str,
    actor_id: int,
    cause: SeatChange.Cause,
    now: datetime,
    hold: Hold | None = None,
    mine: Sequence[Seat] = (),
    own_hold: Hold | None = None,
    own_hold_reason: str = "",
) -> int:
    """Call with the seat rows locked and claimed (claim_seats). Moves `free` seats (maybe
    under a lapsed hold) and the customer's own held seats `mine` to state `to` (into `hold`
    when holding), then ends the holds they left empty: lapsed ones as expired, the
    customer's `own_hold` with `own_hold_reason`. Only while sales are open for customers;
    staff blocking seats may act on a closed sale. Returns the new event version."""
    own = {own_hold.pk} if own_hold else set()
    replaced = {s.hold_id for s in [*free, *mine] if s.hold_id} - own

    def end_emptied_holds() -> None:
        end_holds_left_empty(replaced, reason=Hold.EndReason.EXPIRED, now=now)
        if own:
            end_holds_left_empty(own, reason=own_hold_reason, now=now)

    return changes.commit_transitions(
        event_id=event_id,
        transitions=[
            Transition(seat=s, to_state=to, hold=hold, from_state=seen_state(s)) for s in free
        ]
        + [Transition(seat=s, to_state=to, hold=hold) for s in mine],
        actor_id=actor_id,
        cause=cause,
        now=now,
        require_on_sale=cause != SeatChange.Cause.BLOCK,
        after_seats_written=end_emptied_holds,
    )


def free_seats(
    *,
    event_id: int,
    seats: list[Seat],
    actor_id: int | None,
    cause: SeatChange.Cause,
    now: datetime,
    seen: str | None = None,
) -> int:
    """Call with the seat rows locked. Puts the seats back on sale, whether or not sales are
    open; `seen` is what viewers saw before when it differs from the stored state (a seat
    under a lapsed hold already looked free). Returns the new event version."""
    return changes.commit_transitions(
        event_id=event_id,
        transitions=[
            Transition(seat=s, to_state=SeatState.AVAILABLE, from_state=seen) for s in seats
        ],
        actor_id=actor_id,
        cause=cause,
        now=now,
        require_on_sale=False,
    )


def check_seat_limit(*, customer_id: int, event: Event, adding: list[Seat], now: datetime) -> None:
    """Call with the customer row locked. Raises LimitExceeded if the customer would hold
    plus own more than the event allows."""
    # Both counts in one statement (one round trip): seats under the customer's active holds,
    # and seats of their active bookings.
    held = Seat.objects.filter(
        event_id=event.pk,
        hold__in=Hold.objects.active(now).filter(customer_id=customer_id, event_id=event.pk),
    )
    booked = BookingSeat.objects.filter(
        booking__event_id=event.pk, booking__customer_id=customer_id, active=True
    )
    counts = Event.objects.filter(pk=event.pk).values_list(_count_of(held), _count_of(booked))
    owned = sum(counts.get())
    if owned + len(adding) > event.max_seats_per_customer:
        raise limit_exceeded(
            maximum=event.max_seats_per_customer, owned=owned, seats=[s.pk for s in adding]
        )


def limit_exceeded(*, maximum: int, owned: int, seats: Iterable[int]) -> LimitExceeded:
    """The refusal of seats past the customer's limit for the event."""
    return LimitExceeded(
        f"You can have at most {maximum} seats for this event (you have {owned}).", seats=seats
    )


def _count_of(queryset: QuerySet[Any]) -> Func:
    """`queryset`'s row count as a scalar subquery, to read several counts in one query."""
    return Func(
        Subquery(queryset.order_by().values("pk")),
        function="",
        template="(SELECT COUNT(*) FROM %(expressions)s AS counted)",
        output_field=IntegerField(),
    )


def end_holds_left_empty(hold_ids: Iterable[int], *, reason: str, now: datetime) -> None:
    """Call with the seat rows locked, after they were written. Ends those of the holds that
    no seat belongs to any more.

    Waiting here for a hold's lock would break the lock order (the sweeper locks an expired
    hold first, then waits for our seats: deadlock), so a hold locked by someone else is
    skipped: whoever holds it (its customer adding a seat, releasing it, or the sweeper) ends
    it or keeps it. Emptiness is read only once the hold is locked: a seat its customer
    added and committed meanwhile keeps it open.
    """
    wanted = set(hold_ids)
    if not wanted:
        return
    locked = set(
        Hold.objects.select_for_update(skip_locked=True)
        .filter(pk__in=wanted, ended_at__isnull=True)
        .values_list("pk", flat=True)
    )
    if not locked:
        return
    still_used = set(
        Seat.objects.filter(hold_id__in=locked).values_list("hold_id", flat=True).distinct()
    )
    Hold.objects.filter(pk__in=locked - still_used).update(ended_at=now, end_reason=reason)
