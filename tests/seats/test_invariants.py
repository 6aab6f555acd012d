"""Property-based: whatever customers and staff do, in whatever order and at whatever time,
the services keep every seat's story straight.

A hypothesis state machine drives the real services on the test database (three customers,
one staff member, six seats, at most three seats per customer) with holds, releases (whole
and partial), bookings (of a hold, part of it, or straight from the map), cancellations,
clicks on the map, staff blocking and unblocking, the clock moving past expiries, and sweeps.
After every step it checks the invariants below against the database; every refused call
must have changed nothing. Each example runs in a transaction rolled back at its end.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from events.models import Event
from seats import services
from seats.errors import BookingError
from seats.models import Booking, BookingSeat, Hold, Seat, SeatChange
from tests.conftest import make_event, make_user

pytestmark = pytest.mark.django_db

SEATS = 6
CUSTOMERS = 3
LIMIT = 3
HOLD_MINUTES = 10
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

seat_picks = st.lists(st.integers(0, SEATS - 1), min_size=1, max_size=LIMIT + 1, unique=True)
customers = st.integers(0, CUSTOMERS - 1)


@dataclass
class World:
    event: Event
    seat_ids: list[int]
    customers: list[User]
    staff: User


def snapshot(event_id: int) -> dict[str, Any]:
    """Everything a service could write."""
    return {
        "seats": list(Seat.objects.order_by("pk").values_list("pk", "state", "hold_id")),
        "event": Event.objects.filter(pk=event_id).values().get(),
        "holds": list(
            Hold.objects.order_by("pk").values_list("pk", "expires_at", "ended_at", "end_reason")
        ),
        "bookings": list(Booking.objects.order_by("pk").values_list("pk", "cancelled_at")),
        "booking_seats": list(
            BookingSeat.objects.order_by("pk").values_list("pk", "seat_id", "active")
        ),
        "changes": SeatChange.objects.count(),
    }


class SeatStory(RuleBasedStateMachine):
    world: World  # set by the test
    # Ids of the holds and bookings made so far (refused calls add none).
    holds = Bundle("holds")
    bookings = Bundle("bookings")

    def __init__(self) -> None:
        super().__init__()
        self.example = transaction.atomic()
        self.example.__enter__()
        self.now = START
        self.event = self.world.event
        self.seat_ids = self.world.seat_ids

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self.example.__exit__(None, None, None)

    # --- helpers ------------------------------------------------------------------------

    def seats(self, picks: list[int]) -> list[int]:
        return [self.seat_ids[i] for i in picks]

    def customer(self, index: int) -> User:
        return self.world.customers[index]

    def attempt(self, call: Callable[[], Any]) -> Any:
        """The call's result, or None if it was refused, in which case nothing changed."""
        before = snapshot(self.event.pk)
        try:
            return call()
        except BookingError:
            assert snapshot(self.event.pk) == before, "a refused call changed something"
            return None

    def stranger_to(self, customer: User) -> User:
        """Another customer."""
        index = next(i for i, c in enumerate(self.world.customers) if c.pk == customer.pk)
        return self.customer((index + 1) % CUSTOMERS)

    def stored(self, seat_ids: list[int]) -> dict[int, tuple[str, int | None]]:
        rows = Seat.objects.filter(pk__in=seat_ids).values_list("pk", "state", "hold_id")
        return {pk: (state, hold_id) for pk, state, hold_id in rows}

    # --- customers ----------------------------------------------------------------------

    @rule(target=holds, who=customers, picks=seat_picks)
    def hold(self, who: int, picks: list[int]) -> Any:
        ids = self.seats(picks)
        hold = self.attempt(
            lambda: services.hold_seats(
                customer=self.customer(who), event_id=self.event.pk, seat_ids=ids, now=self.now
            )
        )
        if hold is None:
            return multiple()
        assert hold.is_active(self.now)
        assert set(self.stored(ids).values()) == {("held", hold.pk)}
        return hold.pk

    @rule(target=holds, who=customers, pick=st.integers(0, SEATS - 1))
    def click(self, who: int, pick: int) -> Any:
        seat_id = self.seat_ids[pick]
        toggled = self.attempt(
            lambda: services.toggle_seat(
                customer=self.customer(who), event_id=self.event.pk, seat_id=seat_id, now=self.now
            )
        )
        if toggled is None:
            return multiple()
        expected = ("held", toggled.hold.pk) if toggled.held else ("available", None)
        assert self.stored([seat_id])[seat_id] == expected
        return toggled.hold.pk

    @rule(hold_id=holds, picks=st.none() | seat_picks, by=st.sampled_from(["owner", "other"]))
    def release(self, hold_id: int, picks: list[int] | None, by: str) -> None:
        hold = Hold.objects.get(pk=hold_id)
        ids = None if picks is None else self.seats(picks)
        in_hold = list(hold.seats.values_list("pk", flat=True))
        actor = hold.customer if by == "owner" else self.stranger_to(hold.customer)
        released = self.attempt(
            lambda: services.release_hold(hold_id=hold_id, actor=actor, seat_ids=ids, now=self.now)
        )
        if released is not None:
            assert by == "owner", "released someone else's hold"
            freed = ids if ids is not None else in_hold
            assert set(self.stored(freed).values()) <= {("available", None)}
            left = Seat.objects.filter(hold=released).count()
            assert (released.ended_at is not None) == (left == 0), "ends with its last seat"

    @rule(target=bookings, hold_id=holds, picks=st.none() | seat_picks)
    def book_hold(self, hold_id: int, picks: list[int] | None) -> Any:
        hold = Hold.objects.get(pk=hold_id)
        ids = None if picks is None else self.seats(picks)
        expected = ids if ids is not None else list(hold.seats.values_list("pk", flat=True))
        booking = self.attempt(
            lambda: services.book_seats(
                customer=hold.customer,
                event_id=self.event.pk,
                hold_id=hold_id,
                seat_ids=ids,
                now=self.now,
            )
        )
        if booking is None:
            return multiple()
        self.assert_sold_to(booking, expected)
        return booking.pk

    @rule(target=bookings, who=customers, picks=seat_picks)
    def book_directly(self, who: int, picks: list[int]) -> Any:
        ids = self.seats(picks)
        booking = self.attempt(
            lambda: services.book_seats(
                customer=self.customer(who), event_id=self.event.pk, seat_ids=ids, now=self.now
            )
        )
        if booking is None:
            return multiple()
        self.assert_sold_to(booking, ids)
        return booking.pk

    def assert_sold_to(self, booking: Booking, seat_ids: list[int]) -> None:
        assert set(self.stored(seat_ids).values()) == {("sold", None)}
        sold = booking.items.filter(active=True).values_list("seat_id", flat=True)
        assert sorted(sold) == sorted(seat_ids)

    @rule(booking_id=bookings, by=st.sampled_from(["owner", "staff", "other"]))
    def cancel(self, booking_id: int, by: str) -> None:
        booking = Booking.objects.get(pk=booking_id)
        seat_ids = list(booking.items.filter(active=True).values_list("seat_id", flat=True))
        actor = {
            "owner": booking.customer,
            "staff": self.world.staff,
            "other": self.stranger_to(booking.customer),
        }[by]
        cancelled = self.attempt(
            lambda: services.cancel_booking(booking_id=booking_id, actor=actor, now=self.now)
        )
        if cancelled is not None:
            assert by != "other", "cancelled someone else's booking"
            assert set(self.stored(seat_ids).values()) <= {("available", None)}

    # --- staff, time and the sweeper -------------------------------------------------------

    @rule(picks=seat_picks, block=st.booleans())
    def staff_blocks_or_unblocks(self, picks: list[int], block: bool) -> None:
        ids = self.seats(picks)
        service = services.block_seats if block else services.unblock_seats
        changed = self.attempt(
            lambda: service(
                event_id=self.event.pk, seat_ids=ids, actor=self.world.staff, now=self.now
            )
        )
        if changed is not None:
            wanted = "blocked" if block else "available"
            if block:
                assert set(self.stored(ids).values()) == {(wanted, None)}
            else:
                assert "blocked" not in {state for state, _ in self.stored(ids).values()}

    @rule(minutes=st.integers(1, 2 * HOLD_MINUTES))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def sweep(self) -> None:
        services.expire_holds(now=self.now)
        assert not Seat.objects.filter(
            event=self.event, state="held", hold__expires_at__lte=self.now
        ).exists()

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def the_seats_holds_bookings_counters_and_log_agree(self) -> None:
        # One read of each table per step; the checks below share it.
        event = Event.objects.get(pk=self.event.pk)
        seats = list(Seat.objects.filter(event=event).values_list("pk", "state", "hold_id"))
        holds = {
            pk: (customer_id, expires_at, ended_at)
            for pk, customer_id, expires_at, ended_at in Hold.objects.filter(
                event=event
            ).values_list("pk", "customer_id", "expires_at", "ended_at")
        }
        sales = list(
            BookingSeat.objects.filter(booking__event=event, active=True).values_list(
                "seat_id", "booking__customer_id"
            )
        )
        log = list(
            SeatChange.objects.filter(event=event)
            .order_by("version", "id")
            .values_list("version", "seat_id", "to_state")
        )

        # A seat is in at most one active hold or active booking, and its state says which.
        sold_times = Counter(seat_id for seat_id, _ in sales)
        seats_of_hold: Counter[int] = Counter()
        for pk, state, hold_id in seats:
            times = sold_times[pk]
            assert times <= 1, f"seat {pk} sold {times} times"
            if state == "held":
                assert holds[hold_id][2] is None, f"seat {pk} held under ended hold {hold_id}"
                assert times == 0, f"seat {pk} is held and sold"
                seats_of_hold[hold_id] += 1
            elif state == "sold":
                assert hold_id is None and times == 1, f"seat {pk} is sold {times} times"
            else:
                assert hold_id is None and times == 0, f"seat {pk} is {state} but taken"

        # A hold is open exactly while it has seats; a customer has one active hold at most.
        for hold_id, (_, _, ended_at) in holds.items():
            n = seats_of_hold[hold_id]
            if ended_at is None:
                assert n > 0, f"hold {hold_id} is open with no seats"
        active = {
            hold_id: customer_id
            for hold_id, (customer_id, expires_at, ended_at) in holds.items()
            if ended_at is None and expires_at > self.now
        }
        assert all(n <= 1 for n in Counter(active.values()).values()), "two active holds"

        # Nobody holds (under an active hold) plus owns more than the event allows.
        owned = Counter(customer_id for _, customer_id in sales)
        for hold_id, customer_id in active.items():
            owned[customer_id] += seats_of_hold[hold_id]
        assert max(owned.values(), default=0) <= LIMIT, f"over the limit: {owned}"

        # The event's counters are the seats' states.
        states = Counter(state for _, state, _ in seats)
        assert {state: states[state] for state in ("available", "held", "sold", "blocked")} == {
            "available": event.seats_available,
            "held": event.seats_held,
            "sold": event.seats_sold,
            "blocked": event.seats_blocked,
        }, "the counters are off"

        # Each committed change is one version (no sale opens or closes here), and replaying
        # the log from an untouched map gives the seats' states.
        assert sorted({version for version, _, _ in log}) == list(range(1, event.version + 1))
        replayed = dict.fromkeys(self.seat_ids, "available")
        for _, seat_id, to_state in log:
            replayed[seat_id] = to_state
        assert replayed == {pk: state for pk, state, _ in seats}, "the log disagrees"


def test_any_sequence_of_actions_keeps_the_invariants(venue, booking_path):
    event = make_event(
        venue,
        rows=2,
        seats_per_row=SEATS // 2,
        max_seats_per_customer=LIMIT,
        hold_duration=timedelta(minutes=HOLD_MINUTES),
    )
    world = World(
        event=event,
        seat_ids=list(event.seats.order_by("pk").values_list("pk", flat=True)),
        customers=[make_user(f"customer{i}") for i in range(CUSTOMERS)],
        staff=make_user("boxoffice", is_staff=True),
    )
    story = type("Story", (SeatStory,), {"world": world})

    run_state_machine_as_test(
        story,
        settings=settings(
            max_examples=50,
            stateful_step_count=30,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
            # Tracing which lines only failing runs reach costs minutes and adds little here.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        ),
    )
