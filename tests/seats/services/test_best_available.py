"""seats.services.best_available: choosing the best block of seats, and holding it."""

import math
from datetime import timedelta
from decimal import Decimal
from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from events.models import Event
from seats import services
from seats.errors import Busy, InvalidRequest, LimitExceeded, SaleNotOpen
from seats.models import Seat, SeatChange
from seats.services import best_available
from seats.services.best_available import (
    NotTogether,
    PlanSeat,
    choose_block,
    choose_split,
    fewest_groups,
    most_together,
)
from seats.services.seat_maps import SectionSpec, seat_position
from tests.conftest import make_event, make_user
from tests.pg import another_session
from tests.seats.helpers import changes_at, version

pytestmark = pytest.mark.django_db

# --- choosing, on rows drawn as strings: "." free, "x" taken -------------------------------

_ids = iter(range(1, 10**9))


def row(
    pattern: str,
    *,
    label: str = "A",
    y: float = 1.0,
    section: str = "S",
    prices: dict[int, str] | None = None,
    numbers: list[int] | None = None,
) -> list[PlanSeat]:
    """One straight row centred on the stage: seat n at x = n - middle, at distance y."""
    numbers = numbers or list(range(1, len(pattern) + 1))
    middle = (len(pattern) + 1) / 2
    return [
        PlanSeat(
            id=next(_ids),
            section=section,
            row=label,
            number=n,
            x=i + 1 - middle,
            y=y,
            price=Decimal((prices or {}).get(n, "40.00")),
            free=c == ".",
        )
        for i, (n, c) in enumerate(zip(numbers, pattern, strict=True))
    ]


def numbers(block) -> list[int]:
    return [s.number for s in block.seats]


def test_the_block_closest_to_the_stage_when_nothing_is_stranded():
    front, back = row("........", y=1.0), row("........", label="B", y=2.0)

    block = choose_block([back, front], 4)

    assert (block.seats[0].row, numbers(block)) == ("A", [3, 4, 5, 6])
    assert block.strands == 0


def test_a_block_that_strands_a_single_seat_loses_to_one_that_does_not():
    # 2-3 and 3-4 are closest but each leaves seat 1 or 5 alone at the row's end.
    block = choose_block([row(".....")], 2)

    assert numbers(block) == [1, 2]  # mirror of 4-5; the lower numbers break the tie
    assert block.strands == 0


def test_a_taken_seat_is_a_wall_like_the_row_end():
    # Seats 1-3 free between the row's start and a sold seat; 6-9 free beside it.
    block = choose_block([row("...xx....")], 2)

    # 2-3 (closest of the first run) leaves seat 1 alone; 1-2 leaves 3 alone; 6-7 leaves
    # nothing alone (8-9 stay together).
    assert numbers(block) == [6, 7]


def test_a_gap_in_the_numbering_is_a_wall():
    # Seats 1-3 and 5-7 (no seat 4: an aisle). Holding 2-3 would leave 1 alone.
    seats = row("......", numbers=[1, 2, 3, 5, 6, 7])

    block = choose_block([seats], 3)

    assert numbers(block) in ([1, 2, 3], [5, 6, 7])
    assert choose_block([seats], 4) is None
    assert most_together([seats]) == 3


def test_a_block_that_strands_is_chosen_only_when_every_block_would():
    # Four free seats, three wanted: either block leaves one seat alone.
    block = choose_block([row("....x")], 3)

    assert block is not None and block.strands == 1


def test_a_farther_block_that_strands_nothing_wins_over_a_closer_one_that_does():
    front, back = row("x...x", y=1.0), row("......", label="B", y=5.0)

    block = choose_block([front, back], 2)

    assert (block.seats[0].row, block.strands) == ("B", 0)


def test_no_block_of_that_many_side_by_side():
    rows = [row("..x..x."), row("x..x", label="B")]

    assert choose_block(rows, 3) is None
    assert most_together(rows) == 2


def test_max_price_leaves_dearer_seats_out_but_they_still_count_as_free():
    # Seat 4 is too dear. 2-3 would be closest but leave seat 1 alone, and seat 4 too (it is
    # free: someone else may buy it). 1-2 leaves 3-4 together.
    seats = row("....", prices={4: "90.00"})

    block = choose_block([seats], 2, max_price=Decimal("50.00"))

    assert numbers(block) == [1, 2]
    assert choose_block([seats], 4, max_price=Decimal("50.00")) is None
    assert most_together([seats], Decimal("50.00")) == 3


def curved_rows(spec: SectionSpec) -> list[list[PlanSeat]]:
    rows = []
    for r in range(spec.rows):
        seats = []
        for n in range(spec.seats_per_row):
            x, y = seat_position(spec, r, n)
            seats.append(PlanSeat(next(_ids), spec.name, "AB"[r], n + 1, x, y, spec.price, True))
        rows.append(seats)
    return rows


def test_closest_to_the_stage_on_a_curved_section_is_by_distance_not_row():
    # The front row's ends curve back towards the stage's sides: with its middle taken, the
    # middle of row B is closer to the stage than what is left of row A.
    front, back = curved_rows(SectionSpec("Circle", 2, 9, Decimal("30"), curve=120))
    for seat in front[3:6]:
        seat.free = False

    block = choose_block([front, back], 3)

    assert (block.seats[0].row, numbers(block)) == ("B", [4, 5, 6])
    side = choose_block([front], 3)
    assert side is not None and side.distance > block.distance


# --- the property: whatever the rows, the choice is a free block side by side that strands
# a seat only when every block would, and is the closest of those ------------------------


def brute_force_strands(pattern: str, start: int, count: int) -> int:
    """Free seats left alone by taking pattern[start:start+count], counted by walking out."""

    def gap(step: int, i: int) -> int:
        n = 0
        while 0 <= i < len(pattern) and pattern[i] == ".":
            n, i = n + 1, i + step
        return n

    return int(gap(-1, start - 1) == 1) + int(gap(1, start + count) == 1)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(st.text(alphabet=".x", min_size=1, max_size=14), min_size=1, max_size=4),
    count=st.integers(min_value=1, max_value=5),
)
def test_property_the_choice_is_free_adjacent_and_strands_only_when_unavoidable(patterns, count):
    rows = [row(p, label=chr(ord("A") + i), y=1.0 + i) for i, p in enumerate(patterns)]
    options = [
        (brute_force_strands(p, start, count), r, start)
        for r, p in enumerate(patterns)
        for start in range(len(p) - count + 1)
        if set(p[start : start + count]) == {"."}
    ]

    block = choose_block(rows, count)

    if not options:
        assert block is None
        assert most_together(rows) < count
        return
    assert block is not None
    r = "ABCD".index(block.seats[0].row)
    start = block.seats[0].number - 1
    assert all(s.row == block.seats[0].row for s in block.seats)
    assert numbers(block) == list(range(start + 1, start + count + 1))
    assert set(patterns[r][start : start + count]) == {"."}
    fewest = min(strands for strands, _, _ in options)
    assert brute_force_strands(patterns[r], start, count) == block.strands == fewest

    def distance(r: int, start: int) -> float:
        middle = (len(patterns[r]) + 1) / 2
        cx = sum(i + 1 - middle for i in range(start, start + count)) / count
        return math.hypot(cx, 1.0 + r)

    closest = min(distance(rr, at) for strands, rr, at in options if strands == fewest)
    assert distance(r, start) == pytest.approx(closest, abs=1e-5)


# --- splitting: when no block fits, groups side by side within one section -----------------


def groups_of(split) -> list[tuple[str, list[int]]]:
    return [(g[0].row, [s.number for s in g]) for g in split.groups]


def test_split_takes_the_fewest_groups_each_stranding_nothing():
    # Six wanted, four at most together. Three pairs of row A would do; two groups do too:
    # all of B 1-4 and a pair of A, each leaving no seat alone (B 6-8 with one of B 1-4's
    # neighbours, or three of B 1-4, would each leave one).
    rows = [row("..x..x..", y=1.0), row("....x...", label="B", y=2.0)]

    split = choose_split(rows, 6)

    assert fewest_groups(rows, 6) == 2
    assert groups_of(split) == [("A", [4, 5]), ("B", [1, 2, 3, 4])]
    assert (split.rows_between, split.strands) == (0, 0)


def test_split_prefers_groups_in_adjacent_rows_to_closer_ones_with_a_row_between():
    # Pairs at A 3-4, C 6-7 and D 3-4; row B is full. A and C are closest to the stage but
    # have B between them; C and D are one behind the other.
    rows = [
        row("xx..xxxx", y=1.0),
        row("xxxxxxxx", label="B", y=2.0),
        row("xxxxx..x", label="C", y=3.0),
        row("xx..xxxx", label="D", y=4.0),
    ]

    split = choose_split(rows, 4)

    assert groups_of(split) == [("C", [6, 7]), ("D", [3, 4])]
    assert split.rows_between == 0


def test_split_groups_are_in_one_row_when_that_is_best():
    # One row with a sold seat in the middle: the two halves are the two groups.
    split = choose_split([row("..x..")], 4)

    assert groups_of(split) == [("A", [1, 2]), ("A", [4, 5])]
    assert split.strands == 0


def test_split_avoids_stranding_rather_than_split_evenly():
    # Four of "...x...": 2+2 leaves a seat alone on each side; 3+1, the one beside the sold
    # seat or at the row's end, leaves none.
    split = choose_split([row("...x...")], 4)

    assert split.strands == 0
    assert groups_of(split) in (
        [("A", [1, 2, 3]), ("A", [5])],
        [("A", [3]), ("A", [5, 6, 7])],
    )


def test_split_counts_a_seat_left_alone_between_two_of_its_groups():
    # Stalls A: seat 3 is free but too dear. Taking 1-2 and 4-5 leaves it alone between
    # them, though neither pair does by itself; the Circle's pairs, farther back, leave
    # nothing alone.
    front = row(".....", y=1.0, prices={3: "90.00"}, section="Stalls")
    back = row("..x..", y=3.0, section="Circle")

    split = choose_split([front, back], 4, max_price=Decimal("50.00"))

    assert groups_of(split) == [("A", [1, 2]), ("A", [4, 5])]
    assert split.groups[0][0].section == "Circle"
    assert split.strands == 0
    only_front = choose_split([front], 4, max_price=Decimal("50.00"))
    assert only_front.strands == 1


def test_split_stays_within_one_section_and_prefers_one_that_needs_fewer_groups():
    # Stalls (in front) has 4 free but only as singles; Circle, behind, has them as 2+2.
    stalls = row(".x.x.x.", section="Stalls", y=1.0)
    circle = [
        row("x..x", section="Circle", y=5.0),
        row("x..x", label="B", section="Circle", y=6.0),
    ]

    split = choose_split([stalls, *circle], 4)

    assert {s.section for g in split.groups for s in g} == {"Circle"}
    assert len(split.groups) == 2
    # Never some seats in one section and the rest in another: 3 + 3 free is not 5.
    halves = [row("...", section="Stalls"), row("...", section="Circle", y=5.0)]
    assert choose_split(halves, 5) is None
    assert fewest_groups(halves[:1], 5) is None


def test_split_leaves_out_seats_above_max_price():
    seats = row("......", prices={1: "90.00", 2: "90.00", 6: "90.00"})

    assert choose_split([seats], 4, max_price=Decimal("50.00")) is None
    assert groups_of(choose_split([seats], 3, max_price=Decimal("50.00"))) == [("A", [3, 4, 5])]


def split_rank(patterns, sections, chosen):
    """(groups, rows between, strands, total distance) of taking the `chosen` (row, index)
    free seats of one section, counted directly on the strings."""
    section = sections[chosen[0][0]]
    marked = {r: list(p) for r, p in enumerate(patterns) if sections[r] == section}
    for r, i in chosen:
        marked[r][i] = "o"
    groups = strands = 0
    for cells in marked.values():
        line = "".join(cells)
        groups += sum(1 for i, c in enumerate(line) if c == "o" and line[i - 1 : i] != "o")
        for i, c in enumerate(line):
            sides = (line[i - 1] if i > 0 else "x", line[i + 1] if i + 1 < len(line) else "x")
            strands += c == "." and "." not in sides and "o" in sides
    order = sorted(marked)  # the section's rows, front to back
    used = sorted({order.index(r) for r, _ in chosen})
    between = used[-1] - used[0] + 1 - len(used)
    distance = sum(
        round(math.hypot(i + 1 - (len(patterns[r]) + 1) / 2, 1.0 + r) * 1_000_000)
        for r, i in chosen
    )
    return (groups, between, strands, distance)


def brute_force_split(patterns, sections, count):
    """The best rank of every way to take `count` free seats of one section, or None."""
    ranks = [
        split_rank(patterns, sections, chosen)
        for section in set(sections)
        for chosen in combinations(
            [
                (r, i)
                for r, p in enumerate(patterns)
                if sections[r] == section
                for i, c in enumerate(p)
                if c == "."
            ],
            count,
        )
    ]
    return min(ranks, default=None)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    patterns=st.lists(st.text(alphabet=".x", min_size=1, max_size=6), min_size=1, max_size=3),
    two_sections=st.booleans(),
    count=st.integers(min_value=1, max_value=4),
)
def test_property_the_split_is_the_best_of_every_way_to_take_the_seats(
    patterns, two_sections, count
):
    sections = ["S" if not two_sections or r % 2 == 0 else "T" for r in range(len(patterns))]
    rows = [
        row(p, label=chr(ord("A") + r), y=1.0 + r, section=sections[r])
        for r, p in enumerate(patterns)
    ]

    split = choose_split(rows, count)

    best = brute_force_split(patterns, sections, count)
    if best is None:
        assert split is None
        return
    assert split is not None
    seats = [s for g in split.groups for s in g]
    assert len({s.id for s in seats}) == count and all(s.free for s in seats)
    assert len({s.section for s in seats}) == 1
    for group in split.groups:
        assert len({s.row for s in group}) == 1
        assert [s.number for s in group] == list(range(group[0].number, group[-1].number + 1))
    chosen = [("ABC".index(s.row), s.number - 1) for s in seats]
    assert split_rank(patterns, sections, chosen) == best
    assert split.strands == best[2]


# --- holding, on the database ----------------------------------------------------------------


@pytest.fixture
def hall(venue, now):
    """Two sections: Stalls (3 rows of 6, €50) in front, Balcony (2 rows of 6, €20) behind."""
    event = Event.objects.create(
        name="Gala",
        venue=venue,
        starts_at=now + timedelta(days=30),
        max_seats_per_customer=8,
    )
    services.generate_seat_map(
        event_id=event.pk,
        sections=[
            SectionSpec("Stalls", 3, 6, Decimal("50.00")),
            SectionSpec("Balcony", 2, 6, Decimal("20.00")),
        ],
    )
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE)
    event.refresh_from_db()
    return event


def seat(event, section, row_label, number):
    return Seat.objects.get(event=event, section=section, row_label=row_label, number=number)


def held_places(hold):
    return sorted(
        (s.section, s.row_label, s.number) for s in Seat.objects.filter(hold=hold, state="held")
    )


def test_holds_the_best_block_into_the_customers_hold(alice, hall, now):
    before = version(hall)

    hold = services.hold_best_available(customer=alice, event_id=hall.pk, count=2, now=now)

    assert held_places(hold) == [("Stalls", "A", 3), ("Stalls", "A", 4)]
    assert hold.customer == alice and hold.expires_at == now + hall.hold_duration
    assert version(hall) == before + 1
    assert [(c[2], c[4]) for c in changes_at(hall, before + 1)] == [("held", "hold")] * 2


def test_best_available_adds_to_the_open_hold_like_picking_does(alice, hall, now):
    picked = services.hold_seats(
        customer=alice, event_id=hall.pk, seat_ids=[seat(hall, "Balcony", "A", 1).pk], now=now
    )

    hold = services.hold_best_available(
        customer=alice, event_id=hall.pk, count=2, now=now + timedelta(minutes=1)
    )

    assert hold.pk == picked.pk
    assert hold.expires_at == now + hall.hold_duration
    assert len(held_places(hold)) == 3


def test_section_and_max_price_filter_the_seats(alice, bob, hall, now):
    in_balcony = services.hold_best_available(
        customer=alice, event_id=hall.pk, count=2, section="Balcony", now=now
    )
    cheap = services.hold_best_available(
        customer=bob, event_id=hall.pk, count=2, max_price=Decimal("20.00"), now=now
    )

    assert {p[0] for p in held_places(in_balcony)} == {"Balcony"}
    assert {p[0] for p in held_places(cheap)} == {"Balcony"}
    assert not set(held_places(in_balcony)) & set(held_places(cheap))


def test_a_seat_under_an_expired_hold_is_free_to_choose(alice, bob, hall, now):
    front = [seat(hall, "Stalls", "A", n).pk for n in (3, 4)]
    services.hold_seats(customer=bob, event_id=hall.pk, seat_ids=front, now=now)

    later = now + hall.hold_duration + timedelta(seconds=1)
    hold = services.hold_best_available(customer=alice, event_id=hall.pk, count=2, now=later)

    assert held_places(hold) == [("Stalls", "A", 3), ("Stalls", "A", 4)]


def test_no_block_that_big_answers_not_together_and_changes_nothing(alice, hall, db_state, now):
    before = db_state()

    with pytest.raises(NotTogether) as raised:
        services.hold_best_available(customer=alice, event_id=hall.pk, count=7, now=now)

    assert raised.value.status == 409 and raised.value.code == "seats_unavailable"
    assert raised.value.together == 6
    assert raised.value.as_dict()["together"] == 6
    assert raised.value.message == "No 7 seats side by side are free; at most 6 are."
    assert db_state() == before


def test_the_limit_counts_what_the_customer_already_has(alice, hall, db_state, now):
    services.hold_best_available(customer=alice, event_id=hall.pk, count=6, now=now)
    before = db_state()

    with pytest.raises(LimitExceeded):
        services.hold_best_available(customer=alice, event_id=hall.pk, count=3, now=now)
    with pytest.raises(LimitExceeded):
        services.hold_best_available(customer=alice, event_id=hall.pk, count=9, now=now)
    assert db_state() == before


@pytest.mark.parametrize("count", [0, -1, 101])
def test_count_out_of_range_is_invalid(alice, hall, count):
    with pytest.raises(InvalidRequest, match="1 to 100"):
        services.hold_best_available(customer=alice, event_id=hall.pk, count=count)


def test_an_unknown_section_is_invalid_and_says_which_there_are(alice, hall):
    with pytest.raises(InvalidRequest, match='no section "Gods"; its sections are Balcony, Stalls'):
        services.hold_best_available(customer=alice, event_id=hall.pk, count=2, section="Gods")


def test_not_on_sale(alice, venue):
    draft = make_event(venue, on_sale=False)

    with pytest.raises(SaleNotOpen):
        services.hold_best_available(customer=alice, event_id=draft.pk, count=2)


@pytest.mark.parametrize(
    ("bob_takes", "alice_gets"),
    [
        # A seat of the block chosen: the next best is row B's middle.
        (("Stalls", "A", 4), [("Stalls", "B", 3), ("Stalls", "B", 4)]),
        # A seat that makes the block chosen (A 3-4) strand seat 2: then A 2-3 is best.
        (("Stalls", "A", 1), [("Stalls", "A", 2), ("Stalls", "A", 3)]),
    ],
)
def test_seats_taken_after_the_choice_was_read_are_learned_and_the_next_block_held(
    alice, bob, hall, now, monkeypatch, bob_takes, alice_gets
):
    """The choice comes from a read; someone taking the block, or a seat beside it that
    would make it strand one, before its locks are had makes the service choose again."""
    stale = best_available.read_plan(event_id=hall.pk, section=None, now=now)
    assert [s.number for s in stale.choose(2, None).seats] == [3, 4]  # row A's middle
    monkeypatch.setattr(best_available, "read_plan", lambda **kwargs: stale)
    taken = seat(hall, *bob_takes)
    bobs = services.hold_seats(customer=bob, event_id=hall.pk, seat_ids=[taken.pk], now=now)

    hold = services.hold_best_available(customer=alice, event_id=hall.pk, count=2, now=now)

    assert held_places(hold) == alice_gets
    assert held_places(bobs) == [bob_takes]


def test_a_block_that_keeps_being_taken_ends_busy_not_wrong(alice, hall, db_state, monkeypatch):
    before = db_state()

    def always_taken(**kwargs):
        raise best_available._Taken({})

    monkeypatch.setattr(best_available, "_hold_block", always_taken)

    with pytest.raises(Busy):
        services.hold_best_available(customer=alice, event_id=hall.pk, count=2)
    assert db_state() == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_block_locked_past_the_lock_timeout_is_busy(alice, hall, settings, db_state):
    settings.BOOKING_LOCK_TIMEOUT_MS = 200
    best = seat(hall, "Stalls", "A", 3)
    before = db_state()

    with another_session() as other:
        other.execute("SELECT id FROM seats_seat WHERE id = %s FOR UPDATE", [best.pk])
        with pytest.raises(Busy):
            services.hold_best_available(customer=alice, event_id=hall.pk, count=2)

    assert db_state() == before
    assert not SeatChange.objects.exists()


def test_a_block_that_strands_a_seat_is_only_taken_on_a_fresh_read(
    alice, bob, venue, now, monkeypatch
):
    """After a try fails, what the service knows of the hall beyond that block's locks is old.
    Seats taken since can turn a row where every block strands a seat into one with a block
    that does not (the lone seat got taken), so settling for a stranding block needs a new read.
    """
    event = make_event(venue, rows=2, seats_per_row=4, max_seats_per_customer=4)
    place = {(s.row_label, s.number): s.pk for s in event.seats.all()}
    carol, dave = make_user("carol"), make_user("dave")
    services.book_seats(customer=dave, event_id=event.pk, seat_ids=[place["B", 4]])
    first = best_available.read_plan(event_id=event.pk, section=None, now=now)
    reads = iter([first])
    real_read = best_available.read_plan
    monkeypatch.setattr(
        best_available, "read_plan", lambda **kwargs: next(reads, None) or real_read(**kwargs)
    )
    # After the read: the block it would choose (A 1-2) loses seat 1, and row B, "...x" when
    # read (every pair strands one), becomes "x..x", whose 2-3 strands nothing.
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=[place["A", 1]], now=now)
    services.hold_seats(customer=carol, event_id=event.pk, seat_ids=[place["B", 1]], now=now)

    hold = services.hold_best_available(customer=alice, event_id=event.pk, count=2, now=now)

    # Not A 2-3 or 3-4, which the old read would settle for, each leaving one seat alone.
    assert held_places(hold) == [("A", "B", 2), ("A", "B", 3)]


def test_the_refusal_says_when_only_single_seats_are_left(alice, bob, venue, now):
    event = make_event(venue, rows=1, seats_per_row=3)
    middle = event.seats.get(number=2)
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=[middle.pk], now=now)

    with pytest.raises(NotTogether) as raised:
        services.hold_best_available(customer=alice, event_id=event.pk, count=2, now=now)

    assert raised.value.message == "No 2 seats side by side are free; only single seats are."
    assert raised.value.together == 1


# --- holding a split ---------------------------------------------------------------------------


@pytest.fixture
def no_four_together(venue, now):
    """One section, rows of 4: A "xx..", B "..xx", C "x..x" (x booked by Dave)."""
    event = make_event(venue, rows=3, seats_per_row=4, max_seats_per_customer=8)
    dave = make_user("dave")
    booked = [("A", 1), ("A", 2), ("B", 3), ("B", 4), ("C", 1), ("C", 4)]
    services.book_seats(
        customer=dave,
        event_id=event.pk,
        seat_ids=[event.seats.get(row_label=r, number=n).pk for r, n in booked],
    )
    return event


def test_split_holds_groups_in_adjacent_rows_closest_to_the_stage(alice, no_four_together, now):
    event = no_four_together
    before = version(event)

    held = best_available.hold_best_available_groups(
        customer=alice, event_id=event.pk, count=4, split=True, now=now
    )

    place = {s.pk: (s.row_label, s.number) for s in event.seats.all()}
    assert [[place[pk] for pk in group] for group in held.groups] == [
        [("A", 3), ("A", 4)],
        [("B", 1), ("B", 2)],
    ]
    assert held.together is False
    assert held_places(held.hold) == [("A", "A", 3), ("A", "A", 4), ("A", "B", 1), ("A", "B", 2)]
    assert version(event) == before + 1  # one change for all the groups


def test_without_split_the_same_request_is_not_together(alice, no_four_together, db_state, now):
    before = db_state()

    with pytest.raises(NotTogether) as raised:
        services.hold_best_available(customer=alice, event_id=no_four_together.pk, count=4)

    assert raised.value.together == 2
    assert db_state() == before


def test_split_holds_a_block_side_by_side_when_there_is_one(alice, hall, now):
    held = best_available.hold_best_available_groups(
        customer=alice, event_id=hall.pk, count=2, split=True, now=now
    )

    assert held.together is True
    assert held.groups == [[seat(hall, "Stalls", "A", n).pk for n in (3, 4)]]


def test_split_when_no_section_has_that_many_free_is_409_and_changes_nothing(
    alice, hall, db_state, now
):
    # Balcony has 12 seats at €20, Stalls 18 at €50: 13 at €20 or less do not exist in one
    # section, and neither do 19 anywhere.
    before = db_state()
    hall.max_seats_per_customer = 30
    hall.save(update_fields=["max_seats_per_customer"])

    with pytest.raises(NotTogether) as cheap:
        services.hold_best_available(
            customer=alice, event_id=hall.pk, count=13, max_price=Decimal("20"), split=True
        )
    with pytest.raises(NotTogether) as in_balcony:
        services.hold_best_available(
            customer=alice, event_id=hall.pk, count=13, section="Balcony", split=True
        )
    with pytest.raises(NotTogether) as anywhere:
        services.hold_best_available(customer=alice, event_id=hall.pk, count=19, split=True)

    assert cheap.value.message == (
        "No 13 seats are free in any one section at €20 or less, even apart; at most 12 are."
    )
    assert in_balcony.value.message == (
        "No 13 seats are free in section Balcony, even apart; at most 12 are."
    )
    assert anywhere.value.message == (
        "No 19 seats are free in any one section, even apart; at most 18 are."
    )
    assert (anywhere.value.status, anywhere.value.together) == (409, 6)
    assert db_state() == before


def test_split_counts_against_the_seat_limit_like_a_block(alice, no_four_together, db_state, now):
    event = no_four_together
    event.max_seats_per_customer = 5
    event.save(update_fields=["max_seats_per_customer"])
    services.hold_best_available(customer=alice, event_id=event.pk, count=2, now=now)
    before = db_state()

    with pytest.raises(LimitExceeded):
        services.hold_best_available(
            customer=alice, event_id=event.pk, count=4, split=True, now=now
        )
    assert db_state() == before


@pytest.mark.parametrize(
    ("bob_takes", "alice_gets"),
    [
        # A seat of the split chosen (A 3-4 + B 1-2): next best is B 1-2 + C 2-3.
        (("A", 4), [("A", "B", 1), ("A", "B", 2), ("A", "C", 2), ("A", "C", 3)]),
        # Not one of its seats, but one of its neighbours: nothing else is stranded, so the
        # same split is still held.
        (("C", 2), [("A", "A", 3), ("A", "A", 4), ("A", "B", 1), ("A", "B", 2)]),
    ],
)
def test_a_split_taken_after_it_was_chosen_is_chosen_again_from_a_fresh_read(
    alice, bob, no_four_together, now, monkeypatch, bob_takes, alice_gets
):
    event = no_four_together
    stale = best_available.read_plan(event_id=event.pk, section=None, now=now)
    reads = iter([stale])
    real_read = best_available.read_plan
    monkeypatch.setattr(
        best_available, "read_plan", lambda **kwargs: next(reads, None) or real_read(**kwargs)
    )
    taken = event.seats.get(row_label=bob_takes[0], number=bob_takes[1])
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=[taken.pk], now=now)

    hold = services.hold_best_available(
        customer=alice, event_id=event.pk, count=4, split=True, now=now
    )

    assert held_places(hold) == alice_gets


def test_a_split_that_would_now_strand_a_seat_is_not_held(alice, bob, venue, now, monkeypatch):
    """Under its locks the split's neighbours are checked too: a seat taken beside a group
    since the read, that would now leave one alone, makes the service choose again."""
    event = make_event(venue, rows=2, seats_per_row=8, max_seats_per_customer=8)
    place = {(s.row_label, s.number): s.pk for s in event.seats.all()}
    # Rows A and B both "...x....": five as 3 + (5-8) leaves a pair, not a single seat.
    services.book_seats(
        customer=make_user("dave"), event_id=event.pk, seat_ids=[place["A", 4], place["B", 4]]
    )
    stale = best_available.read_plan(event_id=event.pk, section=None, now=now)
    assert groups_of(choose_split(stale.rows.values(), 5)) == [("A", [3]), ("A", [5, 6, 7, 8])]
    reads = iter([stale])
    real_read = best_available.read_plan
    monkeypatch.setattr(
        best_available, "read_plan", lambda **kwargs: next(reads, None) or real_read(**kwargs)
    )
    # After the read Bob takes A 1: holding A 3 now would leave A 2 alone. A 5-8 and the
    # seat of row B closest to the stage leave none alone.
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=[place["A", 1]], now=now)

    hold = services.hold_best_available(
        customer=alice, event_id=event.pk, count=5, split=True, now=now
    )

    assert held_places(hold) == [*(("A", "A", n) for n in (5, 6, 7, 8)), ("A", "B", 5)]


def test_a_split_that_keeps_being_taken_ends_busy_not_wrong(
    alice, no_four_together, db_state, monkeypatch
):
    before = db_state()

    def always_taken(**kwargs):
        raise best_available._Taken({})

    monkeypatch.setattr(best_available, "_hold_split", always_taken)

    with pytest.raises(Busy):
        services.hold_best_available(
            customer=alice, event_id=no_four_together.pk, count=4, split=True
        )
    assert db_state() == before
