"""seats.changes: every change bumps the version, is recorded, and keeps the counters."""

from datetime import timedelta

import pytest

from seats import services
from seats.errors import (
    SeatsUnavailable,
)
from seats.models import Booking, Seat, SeatChange
from tests.seats.helpers import changes_at, version

pytestmark = pytest.mark.django_db


def test_every_change_bumps_the_version_once_and_records_each_seat(
    alice, bob, staff, event, seat_ids, now
):
    assert version(event) == 0

    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    assert version(event) == 1
    assert changes_at(event, 1) == [
        (seat_ids[0], "available", "held", alice.pk, "hold"),
        (seat_ids[1], "available", "held", alice.pk, "hold"),
    ]

    # One booking: a held seat and a free one, one transaction, one version.
    booking = services.book_seats(
        customer=alice, event_id=event.pk, seat_ids=[seat_ids[1], seat_ids[2]], now=now
    )
    assert version(event) == 2
    assert changes_at(event, 2) == [
        (seat_ids[1], "held", "sold", alice.pk, "book"),
        (seat_ids[2], "available", "sold", alice.pk, "book"),
    ]

    services.release_hold(hold_id=hold.pk, actor=alice, now=now)
    assert version(event) == 3
    assert changes_at(event, 3) == [(seat_ids[0], "held", "available", alice.pk, "release")]

    services.cancel_booking(booking_id=booking.pk, actor=staff, now=now)
    assert version(event) == 4
    assert changes_at(event, 4) == [
        (seat_ids[1], "sold", "available", staff.pk, "cancel"),
        (seat_ids[2], "sold", "available", staff.pk, "cancel"),
    ]

    services.block_seats(event_id=event.pk, seat_ids=seat_ids[5:6], actor=staff, now=now)
    assert changes_at(event, 5) == [(seat_ids[5], "available", "blocked", staff.pk, "block")]
    with pytest.raises(SeatsUnavailable):
        services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[5:6], now=now)

    assert SeatChange.objects.filter(event=event).count() == 8
    assert set(SeatChange.objects.values_list("at", flat=True)) == {now}
    assert Booking.objects.count() == 1


def test_event_seat_counters_follow_every_kind_of_change(alice, bob, staff, event, seat_ids, now):
    def counters():
        event.refresh_from_db()
        return (event.seats_available, event.seats_held, event.seats_sold, event.seats_blocked)

    def actual():
        states = list(Seat.objects.filter(event=event).values_list("state", flat=True))
        return tuple(states.count(s) for s in ("available", "held", "sold", "blocked"))

    assert counters() == actual() == (12, 0, 0, 0)
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:3], now=now)
    services.book_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], hold_id=hold.pk, now=now
    )
    booking = services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[5:7], now=now)
    services.release_hold(hold_id=hold.pk, actor=alice, seat_ids=seat_ids[1:2], now=now)
    services.block_seats(event_id=event.pk, seat_ids=seat_ids[8:10], actor=staff, now=now)
    services.unblock_seats(event_id=event.pk, seat_ids=seat_ids[9:10], actor=staff, now=now)
    services.cancel_booking(booking_id=booking.pk, actor=bob, now=now)
    services.expire_holds(now=now + timedelta(hours=1))

    assert counters() == actual() == (10, 0, 1, 1)
