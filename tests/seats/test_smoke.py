from seats import services
from seats.models import Seat


def test_hold_then_book(alice, event, seat_ids, now):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    booking = services.book_seats(customer=alice, event_id=event.pk, hold_id=hold.pk, now=now)
    assert sorted(booking.seats.values_list("pk", flat=True)) == seat_ids[:2]
    assert set(Seat.objects.filter(pk__in=seat_ids[:2]).values_list("state", flat=True)) == {"sold"}
