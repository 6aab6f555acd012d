"""Many customers asking for the best available seats at once, on real PostgreSQL: no seat in
two holds, every hold a block side by side, no single seat stranded while it was avoidable,
and every customer served while blocks last."""

import threading
from decimal import Decimal
from itertools import groupby

import pytest
from django.utils import timezone

from seats import services
from seats.models import Hold, Seat, SeatChange
from seats.services import best_available
from tests.conftest import make_event
from tests.seats.test_concurrency import (  # noqa: F401 (autouse fixtures used here too)
    a_connection_per_customer,
    patient_locks,
    run_together,
    tally,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

COUNTS = (2, 3, 4)


def rows_of(event):
    """Each row as a string, seat 1 first: "." free, "x" taken."""
    rows: dict[str, list[str]] = {}
    for seat in Seat.objects.filter(event=event).order_by("row_label", "number"):
        rows.setdefault(seat.row_label, []).append("." if seat.state == "available" else "x")
    return {label: "".join(states) for label, states in rows.items()}


def stranded(rows):
    """Single free seats between taken seats or a row end, in rows someone sat down in."""
    return [
        (label, run) for label, r in rows.items() if "x" in r for run in r.split("x") if run == "."
    ]


def assert_strands_only_when_unavoidable(event):
    """Replays the holds in commit order (one event version each, from the seat changes):
    each block that left a single seat alone did so only when no block of its size could
    have avoided it, in the hall as it was just before."""
    numbers = dict(Seat.objects.filter(event=event).values_list("pk", "number"))
    rows = {label: ["."] * len(r) for label, r in rows_of(event).items()}
    for version, changes in groupby(
        SeatChange.objects.filter(event=event).order_by("version", "seat_id"),
        key=lambda change: change.version,
    ):
        seats = [Seat.objects.get(pk=change.seat_id) for change in changes]
        label, count = seats[0].row_label, len(seats)
        start = min(numbers[s.pk] for s in seats) - 1
        if strands("".join(rows[label]), start, count):
            options = [
                strands(r, at, count)
                for r in ("".join(row) for row in rows.values())
                for at in range(len(r) - count + 1)
                if set(r[at : at + count]) == {"."}
            ]
            assert min(options) > 0, (version, label, start, rows)
        for s in seats:
            rows[label][numbers[s.pk] - 1] = "x"


def strands(row, start, count):
    """Single free seats that taking row[start:start+count] leaves alone."""

    def gap(step, i):
        n = 0
        while 0 <= i < len(row) and row[i] == ".":
            n, i = n + 1, i + step
        return n

    return int(gap(-1, start - 1) == 1) + int(gap(1, start + count) == 1)


def best_call(customer, event, count):
    return lambda: services.hold_best_available(customer=customer, event_id=event.pk, count=count)


def check_holds(event, outcomes, counts):
    """Asserts that each winner holds one block of the count it asked for, side by side in
    one row, no seat in two holds, and that the seats held, the changes and the version add
    up to exactly what the winners asked for. Returns the winners' counts."""
    won = [(result, n) for (kind, result), n in zip(outcomes, counts, strict=True) if kind == "won"]
    seen: set[int] = set()
    for hold, count in won:
        seats = list(Seat.objects.filter(hold=hold).order_by("number"))
        assert len(seats) == count, (hold, seats)
        assert len({(s.section, s.row_label) for s in seats}) == 1, seats
        assert [s.number for s in seats] == list(range(seats[0].number, seats[0].number + count))
        assert all(s.state == "held" for s in seats)
        ids = {s.pk for s in seats}
        assert not ids & seen, "a seat in two holds"
        seen |= ids
    held = Seat.objects.filter(event=event, state="held").count()
    assert held == len(seen) == sum(n for _, n in won)
    assert SeatChange.objects.filter(event=event).count() == held
    assert Hold.objects.filter(event=event).count() == len(won)
    event.refresh_from_db()
    assert event.version == len(won)  # one committed change per winner, nothing else
    return [n for _, n in won]


def test_thirty_customers_at_once_all_get_blocks_and_no_seat_is_stranded(customers, venue):
    # 120 seats, 90 asked for: there is always a block that strands nothing.
    event = make_event(venue, rows=10, seats_per_row=12)
    counts = [COUNTS[i % 3] for i in range(30)]

    outcomes = run_together(
        [best_call(c, event, n) for c, n in zip(customers[: len(counts)], counts, strict=True)]
    )

    assert tally(outcomes) == {"won": 30}, outcomes
    check_holds(event, outcomes, counts)
    assert_strands_only_when_unavoidable(event)


def test_thirty_customers_choosing_from_the_same_old_read_still_never_strand(
    customers, venue, monkeypatch
):
    """Every customer chooses from the seat map as it was before anyone held a seat (the
    widest race there can be): what the locks show must put each right."""
    event = make_event(venue, rows=10, seats_per_row=12)
    counts = [COUNTS[i % 3] for i in range(30)]
    read_plan = best_available.read_plan
    stale = threading.local()
    monkeypatch.setattr(best_available, "read_plan", lambda **kwargs: stale.plan)

    def call(customer, count):
        def run():
            stale.plan = read_plan(event_id=event.pk, section=None, now=timezone.now())
            return services.hold_best_available(customer=customer, event_id=event.pk, count=count)

        return run

    outcomes = run_together(
        [call(c, n) for c, n in zip(customers[: len(counts)], counts, strict=True)]
    )

    assert tally(outcomes) == {"won": 30}, outcomes
    check_holds(event, outcomes, counts)
    assert_strands_only_when_unavoidable(event)


def test_more_asked_than_there_are_blocks_every_refusal_is_because_none_is_left(customers, venue):
    # 32 seats, 90 asked for.
    event = make_event(venue, rows=4, seats_per_row=8)
    counts = [COUNTS[i % 3] for i in range(30)]

    outcomes = run_together(
        [best_call(c, event, n) for c, n in zip(customers[: len(counts)], counts, strict=True)]
    )

    kinds = tally(outcomes)
    assert set(kinds) == {"won", "NotTogether"}, outcomes  # never Busy, never an error
    check_holds(event, outcomes, counts)
    rows = rows_of(event)
    longest = max(len(run) for r in rows.values() for run in r.split("x"))
    refused = [n for (kind, _), n in zip(outcomes, counts, strict=True) if kind == "NotTogether"]
    # Seats only went, never came back: a block free now was free when they were refused.
    assert all(n > longest for n in refused), (rows, refused)
    assert_strands_only_when_unavoidable(event)


@pytest.fixture
def pricey_row(venue):
    """Row A of 7: seats 1-2 at €20, seat 3 at €90, seats 4-7 at €50; row B, far back, all
    €20. From the empty hall "2 at €20 or less" is A 1-2 and "2, any price" is A 4-5 (3-4 is
    as close but dearer): each fine alone, but together they leave A 3 alone. Whichever
    comes second has a block that strands nothing: A 3-4, or row B."""
    event = make_event(venue, rows=2, seats_per_row=7, price="50.00")
    event.seats.filter(row_label="A", number__in=[1, 2]).update(price="20.00")
    event.seats.filter(row_label="A", number=3).update(price="90.00")
    event.seats.filter(row_label="B").update(price="20.00", y=10)
    return event


def two_from_the_same_read(customers, event):
    """Both customers choose from the row as it was before either held a seat."""
    plans = [
        best_available.read_plan(event_id=event.pk, section=None, now=timezone.now())
        for _ in range(2)
    ]
    mine = threading.local()

    def call(index, **wanted):
        def run():
            mine.plan = plans[index]
            return services.hold_best_available(
                customer=customers[index], event_id=event.pk, count=2, **wanted
            )

        return run

    return [call(0, max_price=Decimal("20.00")), call(1)], lambda **kwargs: mine.plan


def test_two_blocks_chosen_at_once_never_strand_the_seat_between_them(
    customers, pricey_row, monkeypatch
):
    calls, plan = two_from_the_same_read(customers, pricey_row)
    monkeypatch.setattr(best_available, "read_plan", plan)

    outcomes = run_together(calls)

    assert tally(outcomes) == {"won": 2}, outcomes
    check_holds(pricey_row, outcomes, [2, 2])
    assert stranded(rows_of(pricey_row)) == []


def test_control_without_checking_the_neighbours_under_the_locks_a_seat_is_stranded(
    customers, pricey_row, monkeypatch
):
    calls, plan = two_from_the_same_read(customers, pricey_row)
    monkeypatch.setattr(best_available, "read_plan", plan)
    monkeypatch.setattr(best_available, "_strands_now", lambda block, free: 0)

    outcomes = run_together(calls)

    assert tally(outcomes) == {"won": 2}, outcomes
    assert rows_of(pricey_row) == {"A": "xx.xx..", "B": "......."}
    assert stranded(rows_of(pricey_row)) == [("A", ".")]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_whichever_of_two_stale_choices_commits_first_the_other_strands_nothing(
    customers, pricey_row, monkeypatch, order
):
    """The two orders the race above can take, one after the other."""
    calls, plan = two_from_the_same_read(customers, pricey_row)
    monkeypatch.setattr(best_available, "read_plan", plan)

    holds = {index: calls[index]() for index in order}

    check_holds(pricey_row, [("won", holds[0]), ("won", holds[1])], [2, 2])
    assert stranded(rows_of(pricey_row)) == []


# --- split requests mixed in ---------------------------------------------------------------


def split_or_block_call(customer, event, count, split):
    return lambda: best_available.hold_best_available_groups(
        customer=customer, event_id=event.pk, count=count, split=split
    )


def check_mixed(event, outcomes, asks, *, blocked=0):
    """Asserts that each winner holds exactly the groups it was told of, `count` seats side
    by side group by group within one section (one group unless it asked to split), no seat
    in two holds, and that seats, changes, holds and the version add up to exactly what the
    winners asked for; and that each refusal was because nothing fitted (seats only went, so
    what fits now fitted then). `blocked`: seats staff took off sale first (one change)."""
    seen: set[int] = set()
    won = 0
    for (kind, result), (count, split) in zip(outcomes, asks, strict=True):
        if kind != "won":
            continue
        won += 1
        held = {s.pk: s for s in Seat.objects.filter(hold=result.hold)}
        assert all(s.state == "held" for s in held.values())
        assert sorted(held) == sorted(pk for group in result.groups for pk in group)
        assert len(held) == count
        assert len({s.section for s in held.values()}) == 1
        assert split or len(result.groups) == 1
        for group in result.groups:
            seats = [held[pk] for pk in group]
            assert len({s.row_label for s in seats}) == 1
            assert [s.number for s in seats] == list(range(seats[0].number, seats[-1].number + 1))
        assert not set(held) & seen, "a seat in two holds"
        seen |= set(held)
    held_now = Seat.objects.filter(event=event, state="held").count()
    asked = sum(n for (kind, _), (n, _s) in zip(outcomes, asks, strict=True) if kind == "won")
    assert held_now == len(seen) == asked
    assert SeatChange.objects.filter(event=event).count() == held_now + blocked
    assert Hold.objects.filter(event=event).count() == won
    event.refresh_from_db()
    # One committed change per winner, nothing else.
    assert event.version == won + (1 if blocked else 0)
    rows = rows_of(event)
    longest = max(len(run) for r in rows.values() for run in r.split("x"))
    free = sum(r.count(".") for r in rows.values())
    for (kind, _), (count, split) in zip(outcomes, asks, strict=True):
        if kind != "won":
            assert kind == "NotTogether"
            assert count > (free if split else longest), (rows, count, split)


def test_split_and_block_requests_at_once_never_share_a_seat_and_add_up(customers, venue):
    # Rows of 8 with seat 5 blocked: at most 4 side by side, so every 5 or 6 is split. 70
    # free; half the customers ask for 2 or 3 side by side (at most 38), half for 5 or 6 split:
    # oversubscribed, but more than 30 seats are left for the splits whatever the order.
    event = make_event(venue, rows=10, seats_per_row=8, max_seats_per_customer=8)
    services.block_seats(
        event_id=event.pk,
        seat_ids=list(event.seats.filter(number=5).values_list("pk", flat=True)),
        actor=customers[-1],
    )
    asks = [((2, 3, 5, 6)[i % 4], i % 4 >= 2) for i in range(30)]

    outcomes = run_together(
        [
            split_or_block_call(c, event, n, split)
            for c, (n, split) in zip(customers[: len(asks)], asks, strict=True)
        ]
    )

    assert set(tally(outcomes)) <= {"won", "NotTogether"}, outcomes  # never Busy
    assert any(kind == "won" and not result.together for kind, result in outcomes), outcomes
    check_mixed(event, outcomes, asks, blocked=10)


def test_split_requests_choosing_from_the_same_old_read_never_share_a_seat(
    customers, venue, monkeypatch
):
    """Every customer chooses from the seat map as it was before anyone held a seat: splits
    and blocks are put right by what their locks show."""
    event = make_event(venue, rows=6, seats_per_row=6, max_seats_per_customer=8)
    asks = [((2, 3, 7, 8)[i % 4], i % 4 >= 2) for i in range(16)]  # 7 and 8 only split
    read_plan = best_available.read_plan
    stale = threading.local()
    monkeypatch.setattr(best_available, "read_plan", lambda **kwargs: stale.plan)

    def call(customer, count, split):
        def run():
            stale.plan = read_plan(event_id=event.pk, section=None, now=timezone.now())
            return best_available.hold_best_available_groups(
                customer=customer, event_id=event.pk, count=count, split=split
            )

        return run

    outcomes = run_together(
        [call(c, n, split) for c, (n, split) in zip(customers[: len(asks)], asks, strict=True)]
    )

    assert set(tally(outcomes)) <= {"won", "NotTogether"}, outcomes
    check_mixed(event, outcomes, asks)
