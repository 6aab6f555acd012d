"""The one place seat states are written: version bump, change record, post-commit announcement."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import connection, transaction
from django.db.models import Count

from events.models import Event

from .errors import NotFound, SaleNotOpen
from .models import Hold, Seat, SeatChange, SeatState
from .payloads import PublicSeat, SeatCounts, SeatDelta, public_seat
from .signals import seats_changed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transition:
    seat: Seat
    to_state: str
    hold: Hold | None = None
    # The state viewers saw before; defaults to the stored one (an expired hold shows free).
    from_state: str | None = None


_COUNTERS = {state: f"seats_{state}" for state in SeatState.values}


def bump_event_version(
    *, event_id: int, require_on_sale: bool, count_deltas: dict[str, int] | None = None
) -> tuple[int, SeatCounts]:
    """Increments the event's version, applies `count_deltas` to its per-state seat counters,
    and returns (version, counts), holding the event row lock until commit.

    Versions therefore commit in order: a viewer at version n has seen every change <= n.
    Raises SaleNotOpen when `require_on_sale` and the event is not on sale (checked under the
    lock, so closing a sale and a booking cannot interleave), NotFound if there is no event.
    """
    deltas = count_deltas or {}
    assignments = ", ".join(f"{column} = {column} + %s" for column in _COUNTERS.values())
    sql = f"UPDATE {Event._meta.db_table} SET version = version + 1, {assignments} WHERE id = %s"
    params: list[int | str] = [deltas.get(state, 0) for state in _COUNTERS]
    params.append(event_id)
    if require_on_sale:
        sql += " AND sale_state = %s"
        params.append(Event.SaleState.ON_SALE)
    sql += " RETURNING version, " + ", ".join(_COUNTERS.values())
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        if Event.objects.filter(pk=event_id).exists():
            raise SaleNotOpen("Sales for this event are not open.")
        raise NotFound("No such event.")
    return int(row[0]), {state: int(n) for state, n in zip(_COUNTERS, row[1:], strict=True)}


def event_counts(event: Event) -> SeatCounts:
    counts: SeatCounts = {state: getattr(event, column) for state, column in _COUNTERS.items()}
    return counts


def recount_seats(event_id: int) -> None:
    """Sets the event's seat counters from its seats. For changes made outside
    commit_transitions: generating a draft's seat map, deleting a draft's seats."""
    counts = dict.fromkeys(SeatState.values, 0)
    rows = Seat.objects.filter(event_id=event_id).values_list("state").annotate(n=Count("id"))
    counts.update(dict(rows))
    Event.objects.filter(pk=event_id).update(
        **{column: counts[state] for state, column in _COUNTERS.items()}
    )


def _public(seat: Seat) -> PublicSeat:
    return public_seat(
        id=seat.pk,
        section=seat.section,
        row_label=seat.row_label,
        number=seat.number,
        x=seat.x,
        y=seat.y,
        price=seat.price,
        state=seat.state,
        features=seat.features,
    )


def commit_transitions(
    *,
    event_id: int,
    transitions: list[Transition],
    actor_id: int | None,
    cause: SeatChange.Cause,
    now: datetime,
    require_on_sale: bool,
    after_seats_written: Callable[[], None] | None = None,
) -> int:
    """Writes the new seat states, bumps the event version, records every change, and
    announces the delta to live viewers once the transaction commits.

    Call with the seat rows locked (seats.locking). `after_seats_written` runs once the seats
    are stored and before the event row is locked (e.g. to end holds left empty). Returns the
    new event version.
    """
    if not transitions:
        raise ValueError("commit_transitions needs at least one transition")
    count_deltas: dict[str, int] = {}
    records = []
    for t in transitions:
        # Counters follow the stored state (an unswept expired hold is still stored "held").
        count_deltas[t.seat.state] = count_deltas.get(t.seat.state, 0) - 1
        count_deltas[t.to_state] = count_deltas.get(t.to_state, 0) + 1
        records.append(
            SeatChange(
                event_id=event_id,
                seat=t.seat,
                from_state=t.from_state or t.seat.state,
                to_state=t.to_state,
                at=now,
                actor_id=actor_id,
                cause=cause,
            )
        )
        t.seat.state = t.to_state
        t.seat.hold = t.hold
    seats = [t.seat for t in transitions]
    Seat.objects.bulk_update(seats, ["state", "hold"])
    if after_seats_written is not None:
        after_seats_written()
    # The event row lock comes last and is held only for these two statements and the commit:
    # every change of the event waits for it.
    version, counts = bump_event_version(
        event_id=event_id, require_on_sale=require_on_sale, count_deltas=count_deltas
    )
    for record in records:
        record.version = version
    SeatChange.objects.bulk_create(records)
    announce_on_commit(
        {
            "event": event_id,
            "version": version,
            "seats": [_public(seat) for seat in seats],
            "counts": counts,
        }
    )
    return version


def commit_sale_state(*, event_id: int, sale_state: str) -> int:
    """Call inside a transaction that has just changed the event's sale state: bumps the
    version and announces the new state to live viewers after commit. Returns the version."""
    version, counts = bump_event_version(event_id=event_id, require_on_sale=False)
    announce_on_commit(
        {
            "event": event_id,
            "version": version,
            "seats": [],
            "counts": counts,
            "sale_state": sale_state,
        }
    )
    return version


def announce_on_commit(delta: SeatDelta) -> None:
    """Announces the delta to live viewers once the transaction commits (at once outside
    a transaction, as after a statement that committed on its own)."""
    transaction.on_commit(partial(announce, delta))


def announce(delta: SeatDelta) -> None:
    """Announces the delta of a change already committed (after commit, or at once after a
    statement that committed on its own, as on the event loop: booking_site.loop_bookings).
    Never raises: a failing receiver is logged and never fails the request that committed,
    nor keeps the other receivers from hearing of it."""
    for receiver, result in seats_changed.send_robust(sender=SeatDelta, delta=delta):
        if isinstance(result, Exception):
            logger.error(
                "Announcing version %s of event %s failed in %r",
                delta["version"],
                delta["event"],
                receiver,
                exc_info=result,
            )
