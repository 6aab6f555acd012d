"""seats.services.bookings: booking from a hold or directly, cancelling."""

from datetime import timedelta
from decimal import Decimal

import pytest

from seats import services
from seats.errors import (
    Conflict,
    NotFound,
    SeatsUnavailable,
    UnknownSeats,
)
from seats.models import BookingSeat, Hold, Seat, SeatChange
from tests.conftest import make_event
from tests.seats.helpers import states

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("booking_path")]

HOUR = timedelta(hours=1)


def test_book_from_hold_sells_every_held_seat_and_ends_the_hold(alice, event, seat_ids, now):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)

    booking = services.book_seats(customer=alice, event_id=event.pk, hold_id=hold.pk, now=now)

    assert sorted(booking.seats.values_list("pk", flat=True)) == seat_ids[:2]
    assert booking.total == Decimal("80.00")
    assert states(seat_ids[:2]) == ["sold", "sold"]
    hold.refresh_from_db()
    assert hold.end_reason == Hold.EndReason.BOOKED
    assert Seat.objects.filter(hold=hold).count() == 0


def test_booking_part_of_a_hold_keeps_the_rest_held(alice, event, seat_ids, now):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:3], now=now)

    services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)

    assert states(seat_ids[:3]) == ["sold", "held", "held"]
    hold.refresh_from_db()
    assert hold.ended_at is None


def test_book_directly(alice, event, seat_ids, now):
    booking = services.book_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[3:6], now=now
    )

    assert booking.customer == alice
    assert booking.total == Decimal("120.00")
    assert states(seat_ids[3:6]) == ["sold"] * 3
    assert BookingSeat.objects.filter(booking=booking, active=True).count() == 3


def test_seats_asked_for_in_any_order_are_booked_and_recorded_in_id_order(
    alice, event, seat_ids, now
):
    asked = [seat_ids[5], seat_ids[2], seat_ids[4]]

    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=asked, now=now)

    assert booking.booked_seat_ids == sorted(asked)
    assert [seat.pk for seat in booking.seats.order_by("pk")] == sorted(asked)
    assert states(sorted(asked)) == ["sold"] * 3
    changed = SeatChange.objects.filter(event=event).order_by("pk")
    assert [change.seat_id for change in changed] == sorted(asked)


def test_unknown_seats_among_ones_in_any_order_are_named_and_nothing_is_booked(
    alice, venue, event, seat_ids, now, db_state
):
    elsewhere = make_event(venue, name="Other").seats.order_by("pk").first()
    assert elsewhere is not None
    before = db_state()

    with pytest.raises(UnknownSeats) as exc:
        services.book_seats(
            customer=alice,
            event_id=event.pk,
            seat_ids=[10**9, seat_ids[3], elsewhere.pk, seat_ids[1]],
            now=now,
        )

    assert exc.value.seats == sorted([elsewhere.pk, 10**9])
    assert db_state() == before


def test_booking_a_seat_held_by_someone_else_is_refused(alice, bob, event, seat_ids, now, db_state):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    before = db_state()

    with pytest.raises(SeatsUnavailable) as exc:
        services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[1:3], now=now)

    assert exc.value.status == 409
    assert exc.value.as_dict()["seats"] == [seat_ids[1]]
    assert db_state() == before


def test_booking_someone_elses_hold_by_id_is_refused(alice, bob, event, seat_ids, now, db_state):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    before = db_state()

    with pytest.raises(NotFound):  # as if there were no such hold
        services.book_seats(customer=bob, event_id=event.pk, hold_id=hold.pk, now=now)

    assert db_state() == before


def test_booking_an_expired_hold_is_refused(alice, event, seat_ids, now, db_state):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    before = db_state()

    with pytest.raises(Conflict):
        services.book_seats(customer=alice, event_id=event.pk, hold_id=hold.pk, now=hold.expires_at)

    assert db_state() == before


def test_booking_a_hold_whose_seats_were_all_taken_over_is_a_conflict_not_bad_input(
    alice, bob, event, seat_ids, now, db_state
):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1], now=hold.expires_at)
    before = db_state()

    # Alice's clock was read before her hold expired: it still looks open to her.
    with pytest.raises(Conflict) as refused:
        services.book_seats(
            customer=alice, event_id=event.pk, hold_id=hold.pk, now=hold.expires_at - HOUR / 60
        )

    assert refused.value.status == 409
    assert db_state() == before


def test_a_sold_seat_cannot_be_held_or_booked_again(alice, bob, event, seat_ids, now):
    services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)

    with pytest.raises(SeatsUnavailable):
        services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    with pytest.raises(SeatsUnavailable):
        services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    with pytest.raises(SeatsUnavailable):
        services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)


def test_cancel_puts_the_seats_back_on_sale(alice, bob, event, seat_ids, now):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)

    cancelled = services.cancel_booking(booking_id=booking.pk, actor=alice, now=now)

    assert cancelled.cancelled_at == now
    assert states(seat_ids[:2]) == ["available", "available"]
    assert not BookingSeat.objects.filter(booking=booking, active=True).exists()
    again = services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    assert states(seat_ids[:2]) == ["sold", "sold"]
    assert again.customer == bob


def test_cancel_twice_is_refused(alice, event, seat_ids, now, db_state):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    services.cancel_booking(booking_id=booking.pk, actor=alice, now=now)
    before = db_state()

    with pytest.raises(Conflict):
        services.cancel_booking(booking_id=booking.pk, actor=alice, now=now)

    assert db_state() == before


def test_only_the_customer_or_staff_may_cancel(alice, bob, staff, event, seat_ids, now, db_state):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    before = db_state()

    with pytest.raises(NotFound):
        services.cancel_booking(booking_id=booking.pk, actor=bob, now=now)
    assert db_state() == before

    services.cancel_booking(booking_id=booking.pk, actor=staff, now=now)
    assert states(seat_ids[:1]) == ["available"]
