"""The database refuses a double sale even when code goes around the services."""

from decimal import Decimal

import psycopg
import pytest
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from seats import services
from seats.errors import SeatsUnavailable
from seats.models import Booking, BookingSeat, Hold, Seat

pytestmark = pytest.mark.django_db


def new_booking(event, customer):
    return Booking.objects.create(event=event, customer=customer, created_at=timezone.now())


def test_a_seat_cannot_have_two_active_bookings(alice, bob, event, seat_ids):
    seat = Seat.objects.get(pk=seat_ids[0])
    first = BookingSeat.objects.create(
        booking=new_booking(event, alice), seat=seat, price=Decimal("40")
    )
    second_booking = new_booking(event, bob)

    with pytest.raises(IntegrityError), transaction.atomic():
        BookingSeat.objects.create(booking=second_booking, seat=seat, price=Decimal("40"))

    first.active = False
    first.save(update_fields=["active"])
    BookingSeat.objects.create(booking=second_booking, seat=seat, price=Decimal("40"))
    assert BookingSeat.objects.filter(seat=seat).count() == 2
    assert BookingSeat.objects.filter(seat=seat, active=True).get().booking == second_booking


def test_a_seat_is_held_exactly_when_it_belongs_to_a_hold(alice, event, seat_ids):
    now = timezone.now()
    hold = Hold.objects.create(
        event=event, customer=alice, created_at=now, expires_at=now + event.hold_duration
    )
    seats = Seat.objects.filter(pk__in=seat_ids[:4]).order_by("pk")

    with pytest.raises(IntegrityError), transaction.atomic():
        seats.filter(pk=seat_ids[0]).update(state=Seat.State.HELD)
    with pytest.raises(IntegrityError), transaction.atomic():
        seats.filter(pk=seat_ids[1]).update(hold=hold)
    with pytest.raises(IntegrityError), transaction.atomic():
        seats.filter(pk=seat_ids[2]).update(state=Seat.State.SOLD, hold=hold)

    seats.filter(pk=seat_ids[3]).update(state=Seat.State.HELD, hold=hold)
    assert list(seats.values_list("state", "hold_id")) == [
        ("available", None),
        ("available", None),
        ("available", None),
        ("held", hold.pk),
    ]


def test_when_the_constraint_catches_a_double_sale_the_customer_gets_a_409(
    alice, bob, event, seat_ids, db_state
):
    # A sale recorded behind the services' back: the seat still says "available".
    BookingSeat.objects.create(
        booking=new_booking(event, alice), seat_id=seat_ids[0], price=Decimal("40")
    )
    before = db_state()

    with pytest.raises(SeatsUnavailable) as refused:
        services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:2])

    assert refused.value.status == 409
    assert db_state() == before


@pytest.mark.postgres
@pytest.mark.parametrize("asked", [[], [1, 0, 1]], ids=["no-seats", "a-seat-twice"])
def test_the_booking_function_refuses_no_seats_or_a_seat_twice(
    alice, event, seat_ids, db_state, asked
):
    """The API refuses both before it calls; called around it, the function books nothing."""
    ids = [seat_ids[i] for i in asked]
    before = db_state()

    with (
        pytest.raises(DataError) as refused,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT seatline_book_seats(%s, %s, %s::bigint[], NULL, NULL, true, '5s')",
            [alice.pk, event.pk, ids],
        )

    assert isinstance(refused.value.__cause__, psycopg.errors.InvalidParameterValue)
    assert db_state() == before
