import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from events.models import Event
from seats import services
from seats.models import Booking, Hold, Seat
from tests.conftest import make_event
from tests.seats.test_ratelimits import freeze_clock

HTMX = {"HTTP_HX_REQUEST": "true"}


def toggle(client, event, seat, **extra):
    data = {} if seat is None else {"seat": seat}
    return client.post(reverse("seat-toggle", args=[event.pk]), data, **extra)


def state(seat_id: int) -> str:
    return Seat.objects.get(pk=seat_id).state


def oob_seat(html: str, seat_id: int) -> str:
    match = re.search(rf'<button [^>]*id="seat-{seat_id}"[^>]*>', html)
    assert match, f"seat {seat_id} not in the response"
    assert 'hx-swap-oob="true"' in match.group(0)
    return match.group(0)


def my_seats(html: str) -> str:
    return re.search(r'<style id="my-seats"[^>]* hx-swap-oob="true">(.*?)</style>', html).group(1)


def test_clicking_an_available_seat_holds_it(client, event, seat_ids, alice):
    client.force_login(alice)

    response = toggle(client, event, seat_ids[0], **HTMX)

    assert response.status_code == 200
    seat = Seat.objects.select_related("hold").get(pk=seat_ids[0])
    assert seat.state == "held" and seat.hold.customer == alice
    html = response.content.decode()
    assert 'data-state="held"' in oob_seat(html, seat_ids[0])
    assert f'#seat-{seat_ids[0]}[data-state="held"]' in my_seats(html)
    assert '<aside id="hold-panel"' in html and "Row A · Seat 1" in html
    assert '<span class="count-n" id="count-held">1</span>' in html
    assert "is yours for the next 10 minutes." in html


def test_clicking_your_own_held_seat_releases_it(client, event, seat_ids, alice):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])
    client.force_login(alice)

    response = toggle(client, event, seat_ids[0], **HTMX)

    assert response.status_code == 200
    assert state(seat_ids[0]) == "available" and state(seat_ids[1]) == "held"
    html = response.content.decode()
    assert 'data-state="available"' in oob_seat(html, seat_ids[0])
    style = my_seats(html)
    assert f"#seat-{seat_ids[0]}[" not in style and f"#seat-{seat_ids[1]}[" in style
    assert "Released Section A, row A, seat 1" in html


def test_releasing_the_last_seat_empties_the_panel_and_the_style(client, event, seat_ids, alice):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    client.force_login(alice)

    html = toggle(client, event, seat_ids[0], **HTMX).content.decode()

    assert my_seats(html) == ""
    assert "No seats selected yet." in html
    assert not Hold.objects.filter(customer=alice, ended_at__isnull=True).exists()


@pytest.mark.parametrize("taken", ["held", "sold", "blocked"])
def test_clicking_a_seat_that_is_not_free_explains_and_changes_nothing(
    client, event, seat_ids, alice, bob, staff, taken
):
    if taken == "held":
        services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1])
    elif taken == "sold":
        services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1])
    else:
        services.block_seats(event_id=event.pk, seat_ids=seat_ids[:1], actor=staff)
    version = Event.objects.get(pk=event.pk).version
    client.force_login(alice)

    response = toggle(client, event, seat_ids[0], **HTMX)

    assert response.status_code == 409
    html = response.content.decode()
    assert 'role="alert"' in html
    expected = {
        "held": "being held by another customer",
        "sold": "already sold",
        "blocked": "not for sale",
    }[taken]
    assert expected in html
    assert state(seat_ids[0]) == taken
    assert Event.objects.get(pk=event.pk).version == version
    assert not Hold.objects.filter(customer=alice).exists()
    # The seat is re-sent as it really is, in case this page showed it stale.
    assert f'data-state="{taken}"' in oob_seat(html, seat_ids[0])


def test_someone_elses_seat_without_htmx_is_a_409_page_with_the_map(
    client, event, seat_ids, alice, bob
):
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1])
    client.force_login(alice)

    response = toggle(client, event, seat_ids[0])

    assert response.status_code == 409
    html = response.content.decode()
    assert 'class="banner banner-error" role="alert"' in html
    assert "being held by another customer" in html
    assert f'id="seat-{seat_ids[-1]}"' in html
    assert state(seat_ids[0]) == "held"


def test_without_htmx_a_hold_redirects_back_to_the_map(client, event, seat_ids, alice):
    client.force_login(alice)

    response = toggle(client, event, seat_ids[0])

    assert response.status_code == 302 and response.url == event.get_absolute_url()
    assert state(seat_ids[0]) == "held"
    assert "is yours for the next" in client.get(response.url).content.decode()


def test_anonymous_click_is_sent_to_login_and_back(client, event, seat_ids):
    response = toggle(client, event, seat_ids[0], **HTMX)

    assert response["HX-Redirect"] == f"/accounts/login/?next=/events/{event.pk}/"
    assert state(seat_ids[0]) == "available"
    plain = toggle(client, event, seat_ids[0])
    assert plain.status_code == 302
    assert plain.url.startswith("/accounts/login/?next=")
    assert state(seat_ids[0]) == "available"


def test_sales_closed_refuses_new_holds_but_lets_you_let_go(client, event, seat_ids, alice):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.CLOSED)
    client.force_login(alice)

    refused = toggle(client, event, seat_ids[1], **HTMX)
    released = toggle(client, event, seat_ids[0], **HTMX)

    assert refused.status_code == 409 and "are closed" in refused.content.decode()
    assert state(seat_ids[1]) == "available"
    assert released.status_code == 200 and state(seat_ids[0]) == "available"


def test_the_per_customer_limit_is_explained(client, venue, alice):
    event = make_event(venue, max_seats_per_customer=2)
    ids = list(event.seats.order_by("pk").values_list("pk", flat=True))
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=ids[:2])
    client.force_login(alice)

    response = toggle(client, event, ids[2], **HTMX)

    assert response.status_code == 409
    assert "at most 2 seats" in response.content.decode()
    assert state(ids[2]) == "available"


@pytest.mark.parametrize("value", [None, "", "abc", "-1", "0", "1.5", "99999999999999999999999"])
@pytest.mark.parametrize("htmx", [True, False])
def test_bad_seat_values_are_400(client, event, seat_ids, alice, value, htmx):
    client.force_login(alice)

    response = toggle(client, event, value, **(HTMX if htmx else {}))

    assert response.status_code == 400
    assert not Hold.objects.exists()


def test_unknown_seat_and_another_events_seat_are_400(client, venue, event, seat_ids, alice):
    other = make_event(venue, name="Other")
    other_seat = other.seats.first().pk
    client.force_login(alice)

    unknown = toggle(client, event, 10_000_000, **HTMX)
    foreign = toggle(client, event, other_seat, **HTMX)

    assert unknown.status_code == 400 and foreign.status_code == 400
    assert "not part of this event" in foreign.content.decode()
    assert state(other_seat) == "available"
    assert not Hold.objects.exists()


def test_unknown_event_is_404(client, alice, db):
    client.force_login(alice)
    assert client.post("/events/424242/seats/toggle/", {"seat": 1}, **HTMX).status_code == 404


@pytest.mark.parametrize("name", ["seat-toggle", "hold-release", "checkout"])
def test_get_on_post_routes_is_405(client, event, alice, name):
    client.force_login(alice)
    assert client.get(reverse(name, args=[event.pk])).status_code == 405


def test_release_all_frees_every_held_seat(client, event, seat_ids, alice):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:3])
    client.force_login(alice)

    response = client.post(reverse("hold-release", args=[event.pk]), **HTMX)

    assert response.status_code == 200
    assert {state(pk) for pk in seat_ids[:3]} == {"available"}
    html = response.content.decode()
    for pk in seat_ids[:3]:
        assert 'data-state="available"' in oob_seat(html, pk)
    assert my_seats(html) == ""


def test_release_all_with_nothing_held_is_a_400(client, event, alice):
    client.force_login(alice)
    assert client.post(reverse("hold-release", args=[event.pk])).status_code == 400


def test_panel_refresh_after_the_hold_ran_out_shows_the_seats_free(
    client, event, seat_ids, alice, now
):
    services.hold_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now - timedelta(minutes=11)
    )
    client.force_login(alice)
    url = reverse("hold-panel", args=[event.pk]) + f"?seats={seat_ids[0]},{seat_ids[1]}"

    response = client.get(url, **HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="available"' in oob_seat(html, seat_ids[0])
    assert 'data-state="available"' in oob_seat(html, seat_ids[1])
    assert "ran out" in html and "No seats selected yet." in html
    bad = client.get(reverse("hold-panel", args=[event.pk]) + "?seats=x", **HTMX)
    assert bad.status_code == 400


def test_a_click_answer_says_which_version_its_seats_are_from(client, event, seat_ids, alice):
    """live.js compares it with the version the page has reached over the WebSocket."""
    client.force_login(alice)

    response = toggle(client, event, seat_ids[0], **HTMX)

    event.refresh_from_db()
    assert response["X-Seat-Version"] == str(event.version) == "1"


@pytest.mark.parametrize("value", ["\u0663", "+1", " 1 ", "1.0", "0x1", ""])
def test_a_seat_value_must_be_plain_digits(client, event, seat_ids, alice, value):
    client.force_login(alice)

    response = toggle(client, event, value, **HTMX)

    assert response.status_code == 400
    assert not Hold.objects.exists()


# --- rate limits ----------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    return freeze_clock(monkeypatch)


def test_a_flood_of_clicks_gets_a_429_toast_and_changes_nothing(
    client, event, seat_ids, alice, bob, clock
):
    """The default limit: 30 seat actions per 10 s per customer per event."""
    client.force_login(alice)
    answers = [toggle(client, event, seat_ids[0], **HTMX).status_code for _ in range(30)]
    version = Event.objects.get(pk=event.pk).version

    refused = toggle(client, event, seat_ids[1], **HTMX)

    assert answers == [200] * 30
    assert refused.status_code == 429
    assert refused["Retry-After"] == "10"
    html = refused.content.decode()
    assert '<div id="toasts"' in html and 'hx-swap-oob="innerHTML"' in html
    assert 'role="alert"' in html and "Too many requests" in html
    assert "seat-" not in html  # nothing re-rendered for a refused click
    assert state(seat_ids[1]) == "available"
    assert Event.objects.get(pk=event.pk).version == version
    # Another customer clicks on as before.
    bobs = Client()
    bobs.force_login(bob)
    assert toggle(bobs, event, seat_ids[1], **HTMX).status_code == 200


def test_without_htmx_a_refused_click_is_a_plain_429_page(
    client, event, seat_ids, alice, settings, clock
):
    settings.RATE_LIMIT_SEAT_ACTIONS = [(1, 60)]
    client.force_login(alice)
    toggle(client, event, seat_ids[0])

    refused = toggle(client, event, seat_ids[1])

    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    html = refused.content.decode()
    assert 'role="alert"' in html and "Too many requests" in html
    assert f'href="{event.get_absolute_url()}"' in html
    assert state(seat_ids[1]) == "available"


def test_release_all_counts_as_a_seat_action(client, event, seat_ids, alice, settings, clock):
    settings.RATE_LIMIT_SEAT_ACTIONS = [(2, 10)]
    client.force_login(alice)
    toggle(client, event, seat_ids[0], **HTMX)
    toggle(client, event, seat_ids[1], **HTMX)

    refused = client.post(reverse("hold-release", args=[event.pk]), **HTMX)

    assert refused.status_code == 429
    assert [state(pk) for pk in seat_ids[:2]] == ["held", "held"]
    clock.advance(10)
    assert client.post(reverse("hold-release", args=[event.pk]), **HTMX).status_code == 200


def test_checkout_counts_against_the_booking_limit(client, event, seat_ids, alice, settings, clock):
    settings.RATE_LIMIT_BOOKINGS = [(1, 60)]
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    client.force_login(alice)
    client.post(reverse("checkout", args=[event.pk]), {"hold": 999_999}, **HTMX)  # a 404

    refused = client.post(reverse("checkout", args=[event.pk]), {"hold": hold.pk}, **HTMX)

    assert (refused.status_code, refused["Retry-After"]) == (429, "60")
    assert not Booking.objects.exists()
    assert state(seat_ids[0]) == "held"
