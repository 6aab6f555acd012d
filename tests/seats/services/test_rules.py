"""seats.services.rules shared by every write path: sales must be open to take seats."""

import pytest

from events.models import Event
from seats import services
from seats.errors import (
    SaleNotOpen,
)
from tests.seats.helpers import states

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("sale_state", [Event.SaleState.CLOSED, Event.SaleState.DRAFT])
def test_nothing_can_be_held_or_booked_unless_the_sale_is_open(
    alice, event, seat_ids, now, db_state, sale_state
):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    # Straight to the database: the service refuses "draft" once seats are held.
    Event.objects.filter(pk=event.pk).update(sale_state=sale_state)
    before = db_state()

    with pytest.raises(SaleNotOpen) as exc:
        services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[1:2], now=now)
    with pytest.raises(SaleNotOpen):
        services.book_seats(customer=alice, event_id=event.pk, hold_id=hold.pk, now=now)
    with pytest.raises(SaleNotOpen):
        services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[2:3], now=now)

    assert exc.value.status == 409
    assert db_state() == before


def test_holds_can_still_be_released_and_bookings_cancelled_after_the_sale_closes(
    alice, event, seat_ids, now
):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    booking = services.book_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[1:2], now=now
    )
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.CLOSED)

    services.release_hold(hold_id=hold.pk, actor=alice, now=now)
    services.cancel_booking(booking_id=booking.pk, actor=alice, now=now)

    assert states(seat_ids[:2]) == ["available", "available"]


# --- sweeper --------------------------------------------------------------------------
