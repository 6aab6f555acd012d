import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

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


def test_a_one_minute_hold_is_yours_for_the_next_1_minute(client, venue, alice):
    event = make_event(venue, hold_duration=timedelta(minutes=1))
    client.force_login(alice)

    html = toggle(client, event, event.seats.order_by("pk").first().pk, **HTMX).content.decode()

    assert "is yours for the next 1 minute." in html
    assert "Seats are held for 1 minute, then released." in html


def test_a_checkout_after_sales_closed_shows_one_message(client, event, seat_ids, alice):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.CLOSED)
    client.force_login(alice)

    response = client.post(reverse("checkout", args=[event.pk]), {"hold": hold.pk})

    assert response.status_code == 409
    html = response.content.decode()
    assert len(re.findall(r'class="banner ', html)) == 1
    assert "Sales are closed." in html
    assert not Booking.objects.exists()


# --- Find N seats ---------------------------------------------------------------------------


def find(client, event, htmx=True, **data):
    return client.post(reverse("seat-find", args=[event.pk]), data, **(HTMX if htmx else {}))


def held_by(user) -> list[Seat]:
    return list(Seat.objects.filter(hold__customer=user, state="held").order_by("pk"))


def test_find_holds_n_seats_side_by_side_and_answers_like_a_click(client, event, alice):
    client.force_login(alice)

    response = find(client, event, count="3")

    assert response.status_code == 200
    seats = held_by(alice)
    assert len(seats) == 3 and len({s.row_label for s in seats}) == 1
    numbers = [s.number for s in seats]
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    html = response.content.decode()
    for seat in seats:
        assert 'data-state="held"' in oob_seat(html, seat.pk)
        assert f'#seat-{seat.pk}[data-state="held"]' in my_seats(html)
    row = seats[0].row_label
    assert (
        f"Found 3 seats together: Section A, row {row}, seats {numbers[0]}–{numbers[-1]} "
        "are yours for the next 10 minutes." in html
    )
    assert f'data-seats="{" ".join(str(s.pk) for s in seats)}"' in html
    assert "(3 seats)" in html and response["X-Seat-Version"]


def test_find_adds_to_your_seats_and_names_only_the_new_ones(client, event, seat_ids, alice):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    client.force_login(alice)

    html = find(client, event, count="1").content.decode()

    assert len(held_by(alice)) == 2
    (new,) = [s for s in held_by(alice) if s.pk != seat_ids[0]]
    assert f"Section A, row {new.row_label}, seat {new.number} is yours" in html
    assert "(2 seats)" in html


def test_find_in_a_section_up_to_a_price(client, venue, alice):
    event = make_event(venue, on_sale=False)  # A at €40
    services.generate_seat_map(
        event_id=event.pk,
        sections=[
            services.SectionSpec("B", 2, 4, Decimal("25"), y=6),
            services.SectionSpec("C", 2, 4, Decimal("60"), y=10),
        ],
    )
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE)
    client.force_login(alice)

    assert find(client, event, count="2", section="C").status_code == 200
    assert {s.section for s in held_by(alice)} == {"C"}
    assert find(client, event, count="2", max_price="30.00").status_code == 200
    assert sorted(s.section for s in held_by(alice)) == ["B", "B", "C", "C"]


def test_find_with_split_holds_groups_when_none_are_together(client, event, alice, staff):
    # Seat 2 of every row blocked: at most 2 free side by side anywhere.
    second = list(event.seats.filter(number=2).values_list("pk", flat=True))
    services.block_seats(event_id=event.pk, seat_ids=second, actor=staff)
    client.force_login(alice)

    refused = find(client, event, count="3")
    assert refused.status_code == 409 and held_by(alice) == []
    assert "No 3 seats side by side are free" in refused.content.decode()

    response = find(client, event, count="3", split="1")

    assert response.status_code == 200
    seats = held_by(alice)
    assert len(seats) == 3 and {s.section for s in seats} == {"A"}
    html = response.content.decode()
    assert "No 3 seats are free side by side, so here are 2 groups:" in html
    for seat in seats:
        assert 'data-state="held"' in oob_seat(html, seat.pk)


def test_without_htmx_find_redirects_to_the_page_with_the_message(client, event, alice):
    client.force_login(alice)

    response = find(client, event, htmx=False, count="2")

    assert response.status_code == 302 and response.url == event.get_absolute_url()
    assert len(held_by(alice)) == 2
    assert "Found 2 seats together" in client.get(response.url).content.decode()


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        ({}, 400, "Choose how many seats you want."),
        ({"count": "zero"}, 400, "Choose how many seats you want."),
        ({"count": "-2"}, 400, "Choose how many seats you want."),
        ({"count": "101"}, 400, "Ask for 1 to 100 seats."),
        ({"count": "9"}, 409, "at most 8 seats"),
        ({"count": "5"}, 409, "No 5 seats side by side are free"),
        ({"count": "2", "section": "Z"}, 400, "has no section &quot;Z&quot;"),
        ({"count": "2", "max_price": "cheap"}, 400, "Choose a top price from the list."),
        ({"count": "2", "max_price": "10.00"}, 409, "No 2 seats side by side are free"),
    ],
)
@pytest.mark.parametrize("htmx", [True, False])
def test_find_refusals_say_why_and_change_nothing(client, event, alice, data, status, says, htmx):
    client.force_login(alice)  # the event: 3 rows of 4 seats at €40, up to 8 a customer
    version = Event.objects.get(pk=event.pk).version

    response = find(client, event, htmx=htmx, **data)

    assert response.status_code == status
    html = response.content.decode()
    assert says in html
    assert 'role="alert"' in html
    assert not held_by(alice)
    assert Event.objects.get(pk=event.pk).version == version


def test_find_when_sales_are_closed_is_refused(client, event, alice):
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.CLOSED)
    client.force_login(alice)

    response = find(client, event, count="2")

    assert response.status_code == 409 and "are closed" in response.content.decode()
    assert not held_by(alice)


def test_find_signed_out_is_sent_to_sign_in(client, event):
    response = find(client, event, count="2")

    assert response["HX-Redirect"] == f"/accounts/login/?next=/events/{event.pk}/"
    assert not Hold.objects.exists()


def test_find_counts_as_a_seat_action(client, event, alice, settings, clock):
    settings.RATE_LIMIT_SEAT_ACTIONS = [(1, 10)]
    client.force_login(alice)
    find(client, event, count="1")

    refused = find(client, event, count="1")

    assert refused.status_code == 429 and refused["Retry-After"] == "10"
    assert len(held_by(alice)) == 1


def test_get_on_find_is_405(client, event, alice):
    client.force_login(alice)
    assert client.get(reverse("seat-find", args=[event.pk])).status_code == 405


# --- a seat clicked while signed out --------------------------------------------------------


def sign_in(client, username, **extra):
    return client.post(
        "/accounts/login/", {"username": username, "password": "pw-" + username, **extra}
    )


def test_a_seat_clicked_signed_out_is_held_by_signing_in(client, event, seat_ids, alice):
    toggle(client, event, seat_ids[2], **HTMX)
    assert state(seat_ids[2]) == "available"  # nothing held for nobody

    response = sign_in(client, "alice", next=event.get_absolute_url())

    assert response.status_code == 302 and response.url == event.get_absolute_url()
    seat = Seat.objects.select_related("hold").get(pk=seat_ids[2])
    assert seat.state == "held" and seat.hold.customer == alice
    html = client.get(response.url).content.decode()
    assert "Section A, row A, seat 3 is yours for the next 10 minutes." in html
    assert "Row A · Seat 3" in hold_panel_html(html)


def hold_panel_html(html: str) -> str:
    return re.search(r'<aside id="hold-panel".*?</aside>', html, re.S).group(0)


def test_a_seat_clicked_signed_out_without_htmx_is_held_too(client, event, seat_ids, alice):
    toggle(client, event, seat_ids[0])

    sign_in(client, "alice")

    assert state(seat_ids[0]) == "held"


def test_a_seat_clicked_signed_out_is_held_by_signing_up(client, event, seat_ids):
    toggle(client, event, seat_ids[1], **HTMX)

    client.post(
        "/accounts/signup/",
        {"username": "newfan", "password1": "a-Long-pass-42", "password2": "a-Long-pass-42"},
    )

    seat = Seat.objects.select_related("hold__customer").get(pk=seat_ids[1])
    assert seat.state == "held" and seat.hold.customer.username == "newfan"


def test_a_seat_taken_while_signing_in_is_explained(client, event, seat_ids, alice, bob):
    toggle(client, event, seat_ids[2], **HTMX)
    services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[2:3])

    sign_in(client, "alice")

    assert state(seat_ids[2]) == "sold"
    assert not Hold.objects.filter(customer=alice).exists()
    html = client.get(event.get_absolute_url()).content.decode()
    assert "Section A, row A, seat 3 was taken while you signed in." in html
    assert 'role="alert"' in html


def test_the_remembered_seat_is_tried_once(client, event, seat_ids, alice):
    toggle(client, event, seat_ids[2], **HTMX)
    sign_in(client, "alice")
    client.post(reverse("hold-release", args=[event.pk]))
    client.post("/accounts/logout/")

    sign_in(client, "alice")

    assert state(seat_ids[2]) == "available"


def test_an_old_click_is_not_held_at_a_later_sign_in(client, event, seat_ids, alice, clock):
    toggle(client, event, seat_ids[2], **HTMX)
    session = client.session
    picked = session["seat_picked_signed_out"]
    picked["at"] = (timezone.now() - timedelta(minutes=31)).isoformat()
    session["seat_picked_signed_out"] = picked
    session.save()

    sign_in(client, "alice")

    assert state(seat_ids[2]) == "available"
    assert not Hold.objects.exists()


def test_a_failed_sign_in_or_a_get_holds_nothing(client, event, seat_ids, alice):
    toggle(client, event, seat_ids[2], **HTMX)

    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    client.get("/accounts/login/")
    client.get(event.get_absolute_url())

    assert state(seat_ids[2]) == "available"
    sign_in(client, "alice")
    assert state(seat_ids[2]) == "held"


def test_a_bad_or_foreign_seat_is_not_remembered(client, venue, event, alice):
    other = make_event(venue, name="Other")
    toggle(client, event, "abc", **HTMX)
    toggle(client, event, other.seats.first().pk, **HTMX)

    sign_in(client, "alice")

    assert not Hold.objects.exists()
