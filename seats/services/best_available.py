"""Best available: the service picks the seats. A customer asks for N seats (maybe in one
section, maybe up to a price) and gets the best block of N free seats side by side.

The ranking, best first (`choose_block`):
1. Side by side in one row: same section and row, consecutive seat numbers (a gap in the
   numbering, like a row end, is a wall). No block of N: `NotTogether` (409), saying how many
   are together at most; nothing is split across rows.
2. Fewest single seats stranded: a block that leaves one free seat alone between itself and a
   taken seat or a wall comes after every block that does not (sold, held and blocked seats
   are taken; a seat above `max_price` is still free, for someone else).
3. Closest to the stage: the smallest distance of the block's centre from the stage's front
   centre, (0, 0) on the venue plan.
4. Cheaper, then section, row and seat number: so the same state always gives the same block.

Concurrency: the choice is made from a plain read, then the block and the two seats on either
side of it (what decides whether it strands one) are locked in the global order, like
hold_seats's, and checked again. If someone took one of them meanwhile, what the locks showed
is learned and the next best block is tried, in a new transaction (or savepoint), a bounded
number of times; then Busy. So two requests never get the same seat, and two blocks chosen at
once can never strand a seat between them: their locked neighbourhoods overlap. A block that
strands a seat, or the answer that no block fits, is chosen only from a fresh read (what was
learned since may be out of date elsewhere): seats are only taken meanwhile, which can never
make a block appear that strands nothing, so such a block really was unavoidable.
"""

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import BooleanField, Case, Value, When

from events.models import Event

from .. import locking
from ..errors import Busy, InvalidRequest, LimitExceeded, SeatsUnavailable
from ..models import Hold, Seat, free_seat
from ..parsing import MAX_SEATS_PER_REQUEST
from . import rules
from .holds import add_to_hold, lock_open_hold

# How many blocks one request tries before answering "busy, try again": each failed try has
# learned that someone else took (or is taking) seats it wanted.
MAX_TRIES = 50
# Prices are stored with 2 decimal places, at most 999,999.99 (Seat.price).
_AMOUNT = re.compile(r"\d{1,6}(\.\d{1,2})?")


@dataclass
class PlanSeat:
    """A seat as the chooser sees it: where it is, its price, and whether it is free."""

    id: int
    section: str
    row: str
    number: int
    x: float
    y: float
    price: Decimal
    free: bool


@dataclass(frozen=True)
class Block:
    """Seats side by side in one row, and what taking them would do."""

    seats: tuple[PlanSeat, ...]
    # Up to two seats on either side in the same run of numbers: whether the block strands a
    # seat depends on these and nothing else, so they are locked with it.
    neighbours: tuple[PlanSeat, ...]
    strands: int  # single free seats it would leave alone: 0, 1 or 2
    distance: float  # of its centre from the stage's front centre

    @property
    def seat_ids(self) -> list[int]:
        return [s.id for s in self.seats]

    @property
    def rank(self) -> tuple[int, float, Decimal, str, str, int]:
        first = self.seats[0]
        total = sum((s.price for s in self.seats), Decimal(0))
        return (self.strands, self.distance, total, first.section, first.row, first.number)


class NotTogether(SeatsUnavailable):
    """No block of the seats asked for is free side by side. `together`: the most that are."""

    def __init__(self, message: str, *, together: int) -> None:
        super().__init__(message)
        self.together = together

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "together": self.together}


@dataclass(frozen=True)
class BestAvailable:
    """What a best-available request asks for (parse_best_available)."""

    count: int
    section: str | None = None
    max_price: Decimal | None = None


def parse_best_available(raw: object) -> BestAvailable:
    """Reads the JSON `best_available` object: `count` (an integer), optional `section` (a
    name) and `max_price` (an amount as a string, "45.00", or an integer).
    Raises InvalidRequest, saying what is wrong."""
    if not isinstance(raw, dict):
        raise InvalidRequest(
            '"best_available" must be an object: {"count": N, "section": ..., "max_price": ...}.'
        )
    unknown = sorted(set(raw) - {"count", "section", "max_price"})
    if unknown:
        raise InvalidRequest(
            f'Unknown best_available field "{unknown[0]}": use count, section and max_price.'
        )
    count = raw.get("count")
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidRequest('"count" must be a whole number of seats.')
    check_count(count)
    section = raw.get("section")
    if section is not None and (not isinstance(section, str) or not section.strip()):
        raise InvalidRequest('"section" must be a section name.')
    return BestAvailable(
        count=count,
        section=section.strip() if section is not None else None,
        max_price=_amount(raw.get("max_price")),
    )


def _amount(raw: object) -> Decimal | None:
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not _AMOUNT.fullmatch(raw):
        raise InvalidRequest('"max_price" must be an amount as a string, like "45.00".')
    try:
        return Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise InvalidRequest('"max_price" must be an amount as a string, like "45.00".') from None


def check_count(count: int) -> None:
    if not 1 <= count <= MAX_SEATS_PER_REQUEST:
        raise InvalidRequest(f"Ask for 1 to {MAX_SEATS_PER_REQUEST} seats.")


# --- choosing -------------------------------------------------------------------------------


def runs(row: Sequence[PlanSeat]) -> list[list[PlanSeat]]:
    """The row's seats in number order, cut where the numbering has a gap (an aisle or a
    missing seat is a wall, like the row's ends)."""
    ordered = sorted(row, key=lambda s: s.number)
    out: list[list[PlanSeat]] = []
    for seat in ordered:
        if out and out[-1][-1].number + 1 == seat.number:
            out[-1].append(seat)
        else:
            out.append([seat])
    return out


def _strands(run: Sequence[PlanSeat], start: int, end: int) -> int:
    """Single free seats that taking run[start..end] would leave alone: a free seat right
    beside the block whose other side is a taken seat or a wall."""
    left = start >= 1 and run[start - 1].free and (start < 2 or not run[start - 2].free)
    right = (
        end + 1 < len(run) and run[end + 1].free and (end + 2 >= len(run) or not run[end + 2].free)
    )
    return int(left) + int(right)


def _eligible(seat: PlanSeat, max_price: Decimal | None) -> bool:
    return seat.free and (max_price is None or seat.price <= max_price)


def row_blocks(
    row: Sequence[PlanSeat], count: int, max_price: Decimal | None = None
) -> Iterable[Block]:
    """Every block of `count` free seats side by side in the row, priced at most
    `max_price`."""
    for run in runs(row):
        streak = 0  # eligible seats in a row ending at i
        for i, seat in enumerate(run):
            streak = streak + 1 if _eligible(seat, max_price) else 0
            if streak < count:
                continue
            start = i - count + 1
            seats = tuple(run[start : i + 1])
            cx = sum(s.x for s in seats) / count
            cy = sum(s.y for s in seats) / count
            yield Block(
                seats=seats,
                neighbours=tuple(run[max(start - 2, 0) : start]) + tuple(run[i + 1 : i + 3]),
                strands=_strands(run, start, i),
                # Rounded so that float noise does not decide between mirror-image blocks.
                distance=round(math.hypot(cx, cy), 6),
            )


def best_in_row(
    row: Sequence[PlanSeat], count: int, max_price: Decimal | None = None
) -> Block | None:
    return min(row_blocks(row, count, max_price), key=lambda b: b.rank, default=None)


def most_together(rows: Iterable[Sequence[PlanSeat]], max_price: Decimal | None = None) -> int:
    """The most free seats side by side in one row, priced at most `max_price`."""
    most = 0
    for row in rows:
        for run in runs(row):
            streak = 0
            for seat in run:
                streak = streak + 1 if _eligible(seat, max_price) else 0
                most = max(most, streak)
    return most


def choose_block(
    rows: Iterable[Sequence[PlanSeat]], count: int, max_price: Decimal | None = None
) -> Block | None:
    """The best block of `count` seats in these rows (see the module's ranking), or None."""
    bests = (best_in_row(row, count, max_price) for row in rows)
    return min((b for b in bests if b is not None), key=lambda b: b.rank, default=None)


@dataclass
class Plan:
    """The seats of one event (or section) by row, as read, plus what later locks showed."""

    rows: dict[tuple[str, str], list[PlanSeat]]
    by_id: dict[int, PlanSeat] = field(default_factory=dict)
    _best: dict[tuple[str, str], Block | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {s.id: s for row in self.rows.values() for s in row}

    def choose(self, count: int, max_price: Decimal | None) -> Block | None:
        for key, row in self.rows.items():
            if key not in self._best:
                self._best[key] = best_in_row(row, count, max_price)
        return min(
            (b for b in self._best.values() if b is not None), key=lambda b: b.rank, default=None
        )

    def learn(self, free: Mapping[int, bool]) -> None:
        """Records seats' states as their locks showed them; their rows are ranked again."""
        for seat_id, is_free in free.items():
            seat = self.by_id[seat_id]
            if seat.free != is_free:
                seat.free = is_free
                self._best.pop((seat.section, seat.row), None)


def read_plan(*, event_id: int, section: str | None, now: datetime) -> Plan:
    """The event's seats (in `section` only, if given) with whether each is free now."""
    seats = Seat.objects.filter(event_id=event_id)
    if section is not None:
        seats = seats.filter(section=section)
    values = seats.annotate(
        is_free=Case(
            When(free_seat(now=now), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
    ).values_list("pk", "section", "row_label", "number", "x", "y", "price", "is_free")
    rows: dict[tuple[str, str], list[PlanSeat]] = {}
    for pk, sec, row, number, x, y, price, is_free in values:
        rows.setdefault((sec, row), []).append(
            PlanSeat(pk, sec, row, number, x, y, price, bool(is_free))
        )
    return Plan(rows)


# --- holding --------------------------------------------------------------------------------


class _Taken(Exception):
    """Under its locks the block was no longer what was chosen; `free` is what they showed."""

    def __init__(self, free: dict[int, bool]) -> None:
        super().__init__("seats changed since they were chosen")
        self.free = free


def hold_best_available(
    *,
    customer: User,
    event_id: int,
    count: int,
    section: str | None = None,
    max_price: Decimal | None = None,
    now: datetime | None = None,
) -> Hold:
    """Holds the best block of `count` free seats side by side (see the module docstring for
    the ranking), in `section` and at most `max_price` each when given, adding them to the
    customer's hold for the event (creating it if needed). Returns the hold.

    Raises InvalidRequest (count out of range, no such section), NotFound, SaleNotOpen,
    NotTogether (a SeatsUnavailable, 409: no such block is free), LimitExceeded, or Busy
    (locks not had in time, or the seats kept being taken while it tried).
    """
    check_count(count)
    event = rules.get_event(event_id)
    rules.require_on_sale(event)
    if count > event.max_seats_per_customer:
        raise LimitExceeded(
            f"You can have at most {event.max_seats_per_customer} seats for this event."
        )
    if section is not None:
        _check_section(event, section)
    plan = read_plan(event_id=event.pk, section=section, now=rules.clock(now))
    fresh = True
    for _ in range(MAX_TRIES):
        block = plan.choose(count, max_price)
        if (block is None or block.strands) and not fresh:
            # What was learned since the read is only what the locks showed; whether a block
            # can avoid leaving a seat alone, or whether none fits, is decided on a new read.
            plan, fresh = read_plan(event_id=event.pk, section=section, now=rules.clock(now)), True
            continue
        if block is None:
            raise NotTogether(
                _not_together_message(count, section, max_price, plan),
                together=most_together(plan.rows.values(), max_price),
            )
        try:
            return _hold_block(customer=customer, event=event, block=block, now=now)
        except _Taken as taken:
            plan.learn(taken.free)
            fresh = False
    raise Busy("Seats are selling fast right now; please try again.")


def _check_section(event: Event, section: str) -> None:
    if Seat.objects.filter(event_id=event.pk, section=section).exists():
        return
    names = list(
        Seat.objects.filter(event_id=event.pk)
        .order_by("section")
        .values_list("section", flat=True)
        .distinct()
    )
    raise InvalidRequest(
        f'{event.name} has no section "{section}"; its sections are {", ".join(names)}.'
    )


def _not_together_message(
    count: int, section: str | None, max_price: Decimal | None, plan: Plan
) -> str:
    where = f" in section {section}" if section is not None else ""
    symbol = settings.BOOKING_CURRENCY_SYMBOL
    price = f" at {symbol}{max_price} or less" if max_price is not None else ""
    most = most_together(plan.rows.values(), max_price)
    have = {0: "no seat is", 1: "only single seats are"}.get(most, f"at most {most} are")
    return f"No {count} seats side by side are free{where}{price}; {have}."


def _hold_block(*, customer: User, event: Event, block: Block, now: datetime | None) -> Hold:
    """One try: locks as hold_seats does (customer, open hold, then the block and its
    neighbours by primary key), checks the block is still free and strands no more seats
    than when it was chosen, and holds it. Raises _Taken (rolled back) if not."""
    wanted = set(block.seat_ids)
    with locking.locked_transaction():
        locking.lock_customer(customer.pk)
        hold = lock_open_hold(customer_id=customer.pk, event_id=event.pk, now=rules.clock(now))
        locked = rules.lock_event_seats(
            event.pk, [*block.seat_ids, *(s.id for s in block.neighbours)]
        )
        at = rules.clock(now)  # read after the lock waits, as hold_seats does
        if hold is not None and not hold.is_active(at):
            hold = None
        lapsed = rules.lapsed_hold_ids(locked, at)
        free = {s.pk: _is_free(s, lapsed) for s in locked}
        if not all(free[pk] for pk in wanted) or _strands_now(block, free) > block.strands:
            raise _Taken(free)
        seats = [s for s in locked if s.pk in wanted]
        claimed, _mine = rules.claim_seats(seats, own_hold=hold, now=at)
        return add_to_hold(customer=customer, event=event, hold=hold, free=claimed, now=at)


def _is_free(seat: Seat, lapsed: set[int]) -> bool:
    return seat.state == Seat.State.AVAILABLE or (
        seat.state == Seat.State.HELD and seat.hold_id in lapsed
    )


def _strands_now(block: Block, free: Mapping[int, bool]) -> int:
    """What the block strands with its neighbours' states as locked (`free`)."""
    first, last = block.seats[0].number, block.seats[-1].number
    left = [s for s in block.neighbours if s.number < first]
    right = [s for s in block.neighbours if s.number > last]
    run = [
        PlanSeat(s.id, s.section, s.row, s.number, s.x, s.y, s.price, free[s.id])
        for s in [*left, *block.seats, *right]
    ]
    return _strands(run, len(left), len(left) + len(block.seats) - 1)
