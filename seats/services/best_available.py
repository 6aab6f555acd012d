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

Split (opt-in, `split=True`): when no block of N is free side by side, the N seats are held
as groups side by side within one section (`choose_split`), best first:
1. Fewest groups.
2. Fewest rows between them: groups in the same or adjacent rows (rows ordered by their
   distance from the stage) come before groups with rows between.
3. Fewest single seats stranded, counted over all the groups together.
4. Closest to the stage: the least total distance of the seats from the stage's front centre.
5. Cheaper; what is still equal is settled by the rows' and seats' order, so one state always
   gives one answer.
No section with N free seats (priced at most `max_price`): `NotTogether` (409).

Concurrency: the choice is made from a plain read, then the block and the two seats on either
side of it (what decides whether it strands one) are locked in the global order, like
hold_seats's, and checked again. If someone took one of them meanwhile, what the locks showed
is learned and the next best block is tried, in a new transaction (or savepoint), a bounded
number of times; then Busy. So two requests never get the same seat, and two blocks chosen at
once can never strand a seat between them: their locked neighbourhoods overlap. A block that
strands a seat, or the answer that no block fits, is chosen only from a fresh read (what was
learned since may be out of date elsewhere): seats are only taken meanwhile, which can never
make a block appear that strands nothing, so such a block really was unavoidable. A split is
held the same way (every seat of it and the two seats either side of each group, in one
locked statement), and is likewise chosen only from a fresh read.
"""

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    split: bool = False


def parse_best_available(raw: object) -> BestAvailable:
    """Reads the JSON `best_available` object: `count` (an integer), optional `section` (a
    name), `max_price` (an amount as a string, "45.00", or an integer) and `split` (true or
    false, default false).
    Raises InvalidRequest, saying what is wrong."""
    if not isinstance(raw, dict):
        raise InvalidRequest(
            '"best_available" must be an object: {"count": N, "section": ..., "max_price": ...}.'
        )
    unknown = sorted(set(raw) - {"count", "section", "max_price", "split"})
    if unknown:
        raise InvalidRequest(
            f'Unknown best_available field "{unknown[0]}": use count, section, max_price and split.'
        )
    split = raw.get("split", False)
    if not isinstance(split, bool):
        raise InvalidRequest('"split" must be true or false.')
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
        split=split,
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


# --- splitting ------------------------------------------------------------------------------

# A seat's status in a choice: one of ours, free (someone else's to take), or taken (or a wall).
_OURS, _FREE, _TAKEN = 0, 1, 2
# What a choice costs, summed over its seats: (single seats stranded, distance from the stage
# in millionths of a seat width, price in cents). Whole numbers, so that sums are exact and
# mirror-image choices tie.
_Cost = tuple[int, int, int]
# For each (groups, seats): the best cost and the seats chosen, in row and number order.
_Options = dict[tuple[int, int], tuple[_Cost, tuple[PlanSeat, ...]]]


@dataclass(frozen=True)
class Split:
    """Seats in groups side by side within one section, and what taking them would do."""

    groups: tuple[tuple[PlanSeat, ...], ...]  # front rows first, then by seat number
    # Up to two seats on either side of each group in its run (not of another group): what
    # decides whether the groups strand a seat, so they are locked with them.
    neighbours: tuple[PlanSeat, ...]
    rows_between: int  # rows with no group between the first and the last row used
    strands: int  # single free seats the groups together would leave alone

    @property
    def seat_ids(self) -> list[int]:
        return [s.id for group in self.groups for s in group]


def _alone(before: int, seat: int, after: int) -> bool:
    """Whether a seat between `before` and `after` is free and left alone by taking ours."""
    return seat == _FREE and before != _FREE and after != _FREE and _OURS in (before, after)


def _micro_distance(seat: PlanSeat) -> int:
    return round(math.hypot(seat.x, seat.y) * 1_000_000)


def _run_options(
    run: Sequence[PlanSeat], groups: int, count: int, max_price: Decimal | None
) -> _Options:
    """The best way to take each number of groups and seats (at most `groups` and `count`)
    from one run of seats, stranded seats counted exactly (a free seat between two of our
    groups counts too)."""
    # (groups, seats, status of the seat before the last, status of the last): best so far.
    # The status before the last matters only when the last is free; otherwise it is _TAKEN.
    states: dict[tuple[int, int, int, int], tuple[_Cost, tuple[PlanSeat, ...]]] = {
        (0, 0, _TAKEN, _TAKEN): ((0, 0, 0), ())
    }
    for seat in run:
        if _eligible(seat, max_price):
            choices: tuple[int, ...] = (_FREE, _OURS)
        else:
            choices = (_FREE,) if seat.free else (_TAKEN,)
        following: dict[tuple[int, int, int, int], tuple[_Cost, tuple[PlanSeat, ...]]] = {}
        for (taken_groups, taken, before, last), (cost, chosen) in states.items():
            for status in choices:
                j, n, strands, distance, cents = taken_groups, taken, *cost
                if status == _OURS:
                    j, n = j + (last != _OURS), n + 1
                    if j > groups or n > count:
                        continue
                    distance += _micro_distance(seat)
                    cents += int(seat.price * 100)
                strands += _alone(before, last, status)
                key = (j, n, last if status == _FREE else _TAKEN, status)
                value = (
                    (strands, distance, cents),
                    (*chosen, seat) if status == _OURS else chosen,
                )
                if key not in following or value[0] < following[key][0]:
                    following[key] = value
        states = following
    options: _Options = {}
    for (j, n, before, last), ((strands, distance, cents), chosen) in states.items():
        value = ((strands + _alone(before, last, _TAKEN), distance, cents), chosen)
        if (j, n) not in options or value[0] < options[j, n][0]:
            options[j, n] = value
    return options


def _combine(a: _Options, b: _Options, groups: int, count: int) -> _Options:
    """The best of taking from both (they do not touch: another run or row)."""
    out: _Options = {}
    for (ja, na), (cost_a, seats_a) in a.items():
        for (jb, nb), (cost_b, seats_b) in b.items():
            key = (ja + jb, na + nb)
            if key[0] > groups or key[1] > count:
                continue
            cost = (cost_a[0] + cost_b[0], cost_a[1] + cost_b[1], cost_a[2] + cost_b[2])
            if key not in out or cost < out[key][0]:
                out[key] = (cost, seats_a + seats_b)
    return out


def _streaks(rows: Iterable[Sequence[PlanSeat]], max_price: Decimal | None) -> list[int]:
    """The lengths of the free stretches (priced at most `max_price`) side by side."""
    lengths = []
    for row in rows:
        for run in runs(row):
            streak = 0
            for seat in [*run, None]:
                if seat is not None and _eligible(seat, max_price):
                    streak += 1
                elif streak:
                    lengths.append(streak)
                    streak = 0
    return lengths


def fewest_groups(
    rows: Sequence[Sequence[PlanSeat]], count: int, max_price: Decimal | None = None
) -> int | None:
    """The fewest groups side by side that `count` free seats in these rows (one section)
    can be taken as, or None if fewer are free."""
    total = 0
    for groups, length in enumerate(sorted(_streaks(rows, max_price), reverse=True), start=1):
        total += length
        if total >= count:
            return groups
    return None


def _front_to_back(rows: Iterable[Sequence[PlanSeat]]) -> list[Sequence[PlanSeat]]:
    """A section's rows by the distance of their centre from the stage."""

    def centre(row: Sequence[PlanSeat]) -> tuple[float, str]:
        cx = sum(s.x for s in row) / len(row)
        cy = sum(s.y for s in row) / len(row)
        return (math.hypot(cx, cy), row[0].row)

    return sorted((row for row in rows if row), key=centre)


# (groups, seats, phase) -> the best (rows between, strands, distance, cents) and the seats.
_SectionStates = dict[tuple[int, int, int], tuple[tuple[int, int, int, int], tuple[PlanSeat, ...]]]


def _offer(
    into: _SectionStates,
    key: tuple[int, int, int],
    cost: tuple[int, int, int, int],
    seats: tuple[PlanSeat, ...],
) -> None:
    if key not in into or cost < into[key][0]:
        into[key] = (cost, seats)


def _best_in_section(
    rows: Sequence[Sequence[PlanSeat]], groups: int, count: int, max_price: Decimal | None
) -> tuple[tuple[int, int, int, int], tuple[PlanSeat, ...]] | None:
    """The best `count` seats as exactly `groups` groups in these rows (front to back): cost
    (rows between, strands, distance, cents) and the seats, or None."""
    zero: _Options = {(0, 0): ((0, 0, 0), ())}
    # (groups, seats, phase): before the first row used (0), after a row used (1), after the
    # last (2). Rows skipped in phase 1 are rows between groups.
    states: _SectionStates = {(0, 0, 0): ((0, 0, 0, 0), ())}
    for row in rows:
        table = zero
        for run in runs(row):
            if any(_eligible(s, max_price) for s in run):
                table = _combine(table, _run_options(run, groups, count, max_price), groups, count)
        following: _SectionStates = {}
        for (j, n, phase), (cost, seats) in states.items():
            if phase == 0:
                _offer(following, (0, 0, 0), cost, seats)
            elif phase == 1:
                if j == groups and n == count:
                    _offer(following, (j, n, 2), cost, seats)
                else:  # a row between: worth keeping only if groups are still to come
                    between = (cost[0] + 1, cost[1], cost[2], cost[3])
                    _offer(following, (j, n, 1), between, seats)
            else:
                _offer(following, (j, n, 2), cost, seats)
                continue
            for (rj, rn), (row_cost, row_seats) in table.items():
                if rj == 0 or j + rj > groups or n + rn > count:
                    continue
                if j + rj == groups and n + rn < count:
                    continue  # no group left for the rest
                _offer(
                    following,
                    (j + rj, n + rn, 1),
                    (
                        cost[0],
                        cost[1] + row_cost[0],
                        cost[2] + row_cost[1],
                        cost[3] + row_cost[2],
                    ),
                    seats + row_seats,
                )
        states = following
    ends = [states[key] for key in ((groups, count, 1), (groups, count, 2)) if key in states]
    return min(ends, key=lambda end: end[0], default=None)


def choose_split(
    rows: Iterable[Sequence[PlanSeat]], count: int, max_price: Decimal | None = None
) -> Split | None:
    """The best `count` seats as groups side by side within one section (see the module's
    split ranking), or None if no section has that many free."""
    sections: dict[str, list[Sequence[PlanSeat]]] = {}
    for row in rows:
        if row:
            sections.setdefault(row[0].section, []).append(row)
    fewest = {name: fewest_groups(r, count, max_price) for name, r in sections.items()}
    possible = [g for g in fewest.values() if g is not None]
    if not possible:
        return None
    groups = min(possible)
    best: tuple[tuple[int, int, int, int], str, tuple[PlanSeat, ...]] | None = None
    for name in sorted(sections):
        if fewest[name] != groups:
            continue
        found = _best_in_section(_front_to_back(sections[name]), groups, count, max_price)
        if found is not None and (best is None or (found[0], name) < (best[0], best[1])):
            best = (found[0], name, found[1])
    assert best is not None  # a section with `groups` long enough stretches has a way
    return _split_of(best[2], rows_between=best[0][0], by_place=_places(sections[best[1]]))


def _places(rows: Iterable[Sequence[PlanSeat]]) -> dict[tuple[str, int], PlanSeat]:
    return {(s.row, s.number): s for row in rows for s in row}


def _split_of(
    seats: Sequence[PlanSeat], *, rows_between: int, by_place: Mapping[tuple[str, int], PlanSeat]
) -> Split:
    """The seats (in row, then number order) as groups side by side, with their neighbours."""
    groups: list[list[PlanSeat]] = []
    for seat in seats:
        last = groups[-1][-1] if groups else None
        if last is not None and (last.row, last.number + 1) == (seat.row, seat.number):
            groups[-1].append(seat)
        else:
            groups.append([seat])
    ours = {s.id for s in seats}
    neighbours: list[PlanSeat] = []
    for group in groups:
        for start, step in ((group[0].number, -1), (group[-1].number, 1)):
            for distance in (1, 2):
                beside = by_place.get((group[0].row, start + step * distance))
                if beside is None:
                    break  # a wall: the run ends
                if beside.id not in ours and beside not in neighbours:
                    neighbours.append(beside)
    free = {s.id: s.free for s in [*seats, *neighbours]}
    return Split(
        groups=tuple(tuple(g) for g in groups),
        neighbours=tuple(neighbours),
        rows_between=rows_between,
        strands=stranded(groups, neighbours, free),
    )


def stranded(
    groups: Iterable[Sequence[PlanSeat]], neighbours: Iterable[PlanSeat], free: Mapping[int, bool]
) -> int:
    """Single free seats that taking the groups (one section's) together leaves alone, the
    seats being free as `free` says: a free seat beside a group whose other side is taken, a
    group or a wall. `neighbours` must hold the two seats either side of each group."""
    ours = {s.id for group in groups for s in group}
    window = {(s.row, s.number): s for s in [*neighbours, *(s for g in groups for s in g)]}
    alone = 0
    for (row, number), seat in window.items():
        if seat.id in ours or not free[seat.id]:
            continue
        sides = [window.get((row, number - 1)), window.get((row, number + 1))]
        if any(side is not None and side.id in ours for side in sides) and all(
            side is None or side.id in ours or not free[side.id] for side in sides
        ):
            alone += 1
    return alone


# --- holding --------------------------------------------------------------------------------


class _Taken(Exception):
    """Under its locks the block was no longer what was chosen; `free` is what they showed."""

    def __init__(self, free: dict[int, bool]) -> None:
        super().__init__("seats changed since they were chosen")
        self.free = free


@dataclass(frozen=True)
class BestHeld:
    """What best available held: the customer's hold, and the seats just put in it as groups
    side by side (seat ids in number order; front rows first), one group unless split."""

    hold: Hold
    groups: list[list[int]]

    @property
    def together(self) -> bool:
        return len(self.groups) == 1


def hold_best_available(
    *,
    customer: User,
    event_id: int,
    count: int,
    section: str | None = None,
    max_price: Decimal | None = None,
    split: bool = False,
    now: datetime | None = None,
) -> Hold:
    """hold_best_available_groups, returning only the hold."""
    return hold_best_available_groups(
        customer=customer,
        event_id=event_id,
        count=count,
        section=section,
        max_price=max_price,
        split=split,
        now=now,
    ).hold


def hold_best_available_groups(
    *,
    customer: User,
    event_id: int,
    count: int,
    section: str | None = None,
    max_price: Decimal | None = None,
    split: bool = False,
    now: datetime | None = None,
) -> BestHeld:
    """Holds the best block of `count` free seats side by side (see the module docstring for
    the ranking), in `section` and at most `max_price` each when given, adding them to the
    customer's hold for the event (creating it if needed). With `split`, when no such block
    is free, holds the best `count` seats as groups side by side within one section instead.
    Returns the hold and the groups held.

    Raises InvalidRequest (count out of range, no such section), NotFound, SaleNotOpen,
    NotTogether (a SeatsUnavailable, 409: no such block is free; with `split`, no section
    has `count` such seats free), LimitExceeded, or Busy (locks not had in time, or the seats
    kept being taken while it tried).
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
            # can avoid leaving a seat alone, whether none fits, or how to split, is decided
            # on a new read.
            plan, fresh = read_plan(event_id=event.pk, section=section, now=rules.clock(now)), True
            continue
        try:
            if block is not None:
                hold = _hold_block(customer=customer, event=event, block=block, now=now)
                return BestHeld(hold=hold, groups=[block.seat_ids])
            if not split:
                raise NotTogether(
                    _not_together_message(count, section, max_price, plan),
                    together=most_together(plan.rows.values(), max_price),
                )
            parts = choose_split(plan.rows.values(), count, max_price)
            if parts is None:
                raise NotTogether(
                    _no_split_message(count, section, max_price, plan),
                    together=most_together(plan.rows.values(), max_price),
                )
            hold = _hold_split(customer=customer, event=event, split=parts, now=now)
            return BestHeld(hold=hold, groups=[[s.id for s in g] for g in parts.groups])
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


def _no_split_message(
    count: int, section: str | None, max_price: Decimal | None, plan: Plan
) -> str:
    where = f"in section {section}" if section is not None else "in any one section"
    symbol = settings.BOOKING_CURRENCY_SYMBOL
    price = f" at {symbol}{max_price} or less" if max_price is not None else ""
    free: dict[str, int] = {}
    for row in plan.rows.values():
        for seat in row:
            free[seat.section] = free.get(seat.section, 0) + _eligible(seat, max_price)
    most = max(free.values(), default=0)
    have = {0: "no seat is", 1: "only one is"}.get(most, f"at most {most} are")
    return f"No {count} seats are free {where}{price}, even apart; {have}."


def _hold_block(*, customer: User, event: Event, block: Block, now: datetime | None) -> Hold:
    """One try: locks as hold_seats does (customer, open hold, then the block and its
    neighbours by primary key), checks the block is still free and strands no more seats
    than when it was chosen, and holds it. Raises _Taken (rolled back) if not."""
    return _hold_checked(
        customer=customer,
        event=event,
        wanted=block.seat_ids,
        beside=[s.id for s in block.neighbours],
        still_good=lambda free: _strands_now(block, free) <= block.strands,
        now=now,
    )


def _hold_split(*, customer: User, event: Event, split: Split, now: datetime | None) -> Hold:
    """One try, like _hold_block: every seat of the split and each group's neighbours are
    locked in one statement, checked free and stranding no more seats than when chosen, and
    held. Raises _Taken (rolled back) if not."""
    return _hold_checked(
        customer=customer,
        event=event,
        wanted=split.seat_ids,
        beside=[s.id for s in split.neighbours],
        still_good=lambda free: stranded(split.groups, split.neighbours, free) <= split.strands,
        now=now,
    )


def _hold_checked(
    *,
    customer: User,
    event: Event,
    wanted: Sequence[int],
    beside: Sequence[int],
    still_good: Callable[[Mapping[int, bool]], bool],
    now: datetime | None,
) -> Hold:
    """Locks the customer, their open hold, then the `wanted` seats and those `beside` them
    (primary-key order); holds the wanted seats if all are free and `still_good` accepts
    the seats' states. Raises _Taken (rolled back, with the states the locks showed) if
    not."""
    with locking.locked_transaction():
        locking.lock_customer(customer.pk)
        hold = lock_open_hold(customer_id=customer.pk, event_id=event.pk, now=rules.clock(now))
        locked = rules.lock_event_seats(event.pk, [*wanted, *beside])
        at = rules.clock(now)  # read after the lock waits, as hold_seats does
        if hold is not None and not hold.is_active(at):
            hold = None
        lapsed = rules.lapsed_hold_ids(locked, at)
        free = {s.pk: _is_free(s, lapsed) for s in locked}
        if not all(free[pk] for pk in wanted) or not still_good(free):
            raise _Taken(free)
        ours = set(wanted)
        seats = [s for s in locked if s.pk in ours]
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
