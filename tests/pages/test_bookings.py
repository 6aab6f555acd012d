import re
from datetime import timedelta

from django.urls import reverse

from seats import services
from seats.models import Booking, Seat


def held(alice, event, seat_ids, now=None, n=2):
    return services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:n], now=now)


def test_checkout_books_the_hold_and_shows_the_confirmation(client, event, seat_ids, alice):
    hold = held(alice, event, seat_ids)
    client.force_login(alice)

    response = client.post(reverse("checkout", args=[event.pk]), {"hold": hold.pk})

    booking = Booking.objects.get(customer=alice)
    assert response.status_code == 302
    assert response.url == reverse("booking-detail", args=[booking.pk])
    assert set(Seat.objects.filter(pk__in=seat_ids[:2]).values_list("state", flat=True)) == {"sold"}
    page = client.get(response.url).content.decode()
    assert "You're booked!" in page and f"Booking #{booking.pk}" in page
    assert "€80.00" in page and event.name in page


def test_checkout_over_htmx_redirects_the_page(client, event, seat_ids, alice):
    hold = held(alice, event, seat_ids)
    client.force_login(alice)

    response = client.post(
        reverse("checkout", args=[event.pk]), {"hold": hold.pk}, HTTP_HX_REQUEST="true"
    )

    booking = Booking.objects.get(customer=alice)
    assert response["HX-Redirect"] == reverse("booking-detail", args=[booking.pk])


def test_checkout_of_an_expired_hold_books_nothing(client, event, seat_ids, alice, now):
    hold = held(alice, event, seat_ids, now=now - timedelta(minutes=11))
    client.force_login(alice)

    response = client.post(reverse("checkout", args=[event.pk]), {"hold": hold.pk})

    assert response.status_code == 409
    assert "not active" in response.content.decode()
    assert not Booking.objects.exists()


def test_checkout_with_a_bad_hold_value_is_400(client, event, alice):
    client.force_login(alice)

    for value in ("", "nope", "-3"):
        assert client.post(reverse("checkout", args=[event.pk]), {"hold": value}).status_code == 400
    assert not Booking.objects.exists()


def test_checkout_of_someone_elses_hold_books_nothing(client, event, seat_ids, alice, bob):
    hold = held(bob, event, seat_ids)
    client.force_login(alice)

    response = client.post(reverse("checkout", args=[event.pk]), {"hold": hold.pk})

    assert response.status_code == 404  # someone else's hold looks like no hold
    assert not Booking.objects.exists()


def test_confirmation_is_for_the_customer_and_staff_only(
    client, event, seat_ids, alice, bob, staff
):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    url = reverse("booking-detail", args=[booking.pk])

    assert client.get(url).status_code == 302  # to login
    client.force_login(bob)
    assert client.get(url).status_code == 404
    client.force_login(staff)
    assert client.get(url).status_code == 200
    assert client.get(reverse("booking-detail", args=[999999])).status_code == 404


def test_my_bookings_lists_mine_and_cancel_releases_the_seats(client, event, seat_ids, alice, bob):
    mine = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])
    services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[2:3])
    client.force_login(alice)

    listing = client.get(reverse("booking-list")).content.decode()
    assert listing.count('class="booking-row') == 1
    assert "Section A · Row A · Seat 1" in listing and "Seat 3" not in listing

    response = client.post(reverse("booking-cancel", args=[mine.pk]), {"back": "list"})

    assert response.status_code == 302 and response.url == reverse("booking-list")
    mine.refresh_from_db()
    assert mine.is_cancelled
    assert set(Seat.objects.filter(pk__in=seat_ids[:2]).values_list("state", flat=True)) == {
        "available"
    }
    listing = client.get(response.url).content.decode()
    assert "booking-row is-cancelled" in listing and ">Cancelled<" in listing
    assert "is cancelled and its seats are released" in listing


def test_cancelling_twice_is_a_409_not_a_crash(client, event, seat_ids, alice):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    client.force_login(alice)
    client.post(reverse("booking-cancel", args=[booking.pk]))

    response = client.post(reverse("booking-cancel", args=[booking.pk]))

    assert response.status_code == 409
    assert "already cancelled" in response.content.decode()


def test_nobody_cancels_someone_elses_booking(client, event, seat_ids, alice, bob):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    client.force_login(bob)

    response = client.post(reverse("booking-cancel", args=[booking.pk]))

    assert response.status_code == 404
    booking.refresh_from_db()
    assert not booking.is_cancelled
    assert Seat.objects.get(pk=seat_ids[0]).state == "sold"


def test_booking_pages_need_login_and_cancel_needs_post(client, event, seat_ids, alice):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])

    assert client.get(reverse("booking-list")).status_code == 302
    assert client.post(reverse("booking-cancel", args=[booking.pk])).status_code == 302
    client.force_login(alice)
    assert client.get(reverse("booking-cancel", args=[booking.pk])).status_code == 405
    booking.refresh_from_db()
    assert not booking.is_cancelled


def test_my_bookings_names_seats_as_the_hold_panel_does_not_by_their_staff_code(
    client, event, seat_ids, alice
):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[4:5])
    services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[4:5])
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[5:6])
    client.force_login(alice)

    listing = client.get(reverse("booking-list")).content.decode()
    page = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    chips = re.findall(r'<span class="seat-chip">(.*?)</span>', listing)
    held = re.findall(r'<span class="held-place">(.*?)</span>', page)
    assert chips == ["Section A · Row B · Seat 1"]  # 4 seats a row: the 5th is B1
    assert held == ["Section A · Row B · Seat 2"]
    assert "A-B-1" not in listing
    # One wording: the list's name is the panel's with only the seat number changed.
    assert chips[0][: -len("1")] == held[0][: -len("2")]
