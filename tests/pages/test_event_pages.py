import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from events.models import Event
from seats import services
from tests.conftest import make_event


def seat_tags(html: str) -> dict[int, str]:
    """Seat id -> the seat's <button ...> tag, as rendered."""
    return {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r'<button type="submit" name="seat" value="(\d+)"[^>]*>', html)
    }


def test_event_page_renders_every_seat_with_state_and_name(client, event, seat_ids, bob, now):
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[1:2], now=now)

    response = client.get(reverse("event-detail", args=[event.pk]))

    assert response.status_code == 200
    tags = seat_tags(response.content.decode())
    assert sorted(tags) == seat_ids
    assert 'data-state="held"' in tags[seat_ids[0]]
    assert 'data-state="sold"' in tags[seat_ids[1]] and 'aria-disabled="true"' in tags[seat_ids[1]]
    assert 'data-state="available"' in tags[seat_ids[2]]
    assert 'aria-label="Section A, row A, seat 3, €40.00, available"' in tags[seat_ids[2]]
    assert f'id="seat-{seat_ids[2]}"' in tags[seat_ids[2]]


def test_event_page_carries_the_live_section_at_the_map_version(client, event, seat_ids, bob):
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:2])
    event.refresh_from_db()

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    assert f'ws-connect="/ws/events/{event.pk}/?v={event.version}"' in html
    assert f'<div id="live-version" data-kind="page" data-version="{event.version}">' in html
    assert 'id="live-status"' in html
    assert 'id="seat-form"' in html and reverse("seat-toggle", args=[event.pk]) in html
    assert '<span class="count-n" id="count-held">2</span>' in html


def test_own_held_seats_are_marked_mine_and_others_are_not(client, event, seat_ids, alice, bob):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[2:3])
    client.force_login(alice)

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    style = re.search(r'<style id="my-seats"[^>]*>(.*?)</style>', html).group(1)
    assert f'#seat-{seat_ids[0]}[data-state="held"]' in style
    assert f'#seat-{seat_ids[1]}[data-state="held"]' in style
    assert f"#seat-{seat_ids[2]}" not in style
    panel = re.search(r'<aside id="hold-panel".*?</aside>', html, re.S).group(0)
    assert "Row A · Seat 1" in panel and "Row A · Seat 2" in panel
    assert "Seat 3" not in panel
    assert "€80.00" in panel


def test_a_bare_visitor_sees_no_one_elses_seats_as_theirs(client, event, seat_ids, bob):
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1])

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    assert re.search(r'<style id="my-seats"[^>]*></style>', html)
    assert "Sign in to pick seats" in html


def test_price_tiers_get_a_legend_and_a_colour_rule(client, venue, staff):
    event = make_event(venue, on_sale=False)
    services.generate_seat_map(
        event_id=event.pk, sections=[services.SectionSpec("B", 1, 2, Decimal("95"))]
    )
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE)

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    assert '.seat[data-price="40.00"]' in html and '.seat[data-price="95.00"]' in html
    legend = re.search(r'<ul class="legend legend-tiers".*?</ul>', html, re.S).group(0)
    assert "€40.00" in legend and "€95.00" in legend
    assert "Section A" in html and "Section B" in html


def test_draft_event_is_hidden_from_customers_but_not_staff(client, venue, alice, staff):
    draft = make_event(venue, on_sale=False, name="Secret")
    url = reverse("event-detail", args=[draft.pk])

    assert client.get(url).status_code == 404
    client.force_login(alice)
    assert client.get(url).status_code == 404
    assert "Secret" not in client.get(reverse("event-list")).content.decode()
    client.force_login(staff)
    response = client.get(url)
    assert response.status_code == 200
    assert "Only staff can see this page" in response.content.decode()


def test_closed_event_says_sales_are_closed(client, event):
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.CLOSED)

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    assert "Sales are closed." in html


def test_unknown_event_is_404(client, db):
    assert client.get(reverse("event-detail", args=[999999])).status_code == 404


def test_event_list_shows_events_on_sale_with_prices_and_seats_left(
    client, venue, event, seat_ids, bob, now
):
    services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    # A hold that ran out leaves its seat free, sweeper or not.
    services.hold_seats(
        customer=bob, event_id=event.pk, seat_ids=seat_ids[2:3], now=now - timedelta(hours=1)
    )
    closed = make_event(venue, name="Quartet")
    services.set_sale_state(event_id=closed.pk, sale_state=Event.SaleState.CLOSED)

    html = client.get(reverse("event-list")).content.decode()

    assert event.name in html and event.venue.name in html
    assert "10 seats left" in html
    assert "€40.00" in html
    assert "Quartet" in html and "Sales closed" in html


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/"])
def test_auth_pages_render(client, db, path):
    response = client.get(path + "?next=/events/1/")

    assert response.status_code == 200
    assert 'name="next" value="/events/1/"' in response.content.decode()


def test_signup_logs_in_and_returns_to_the_event(client, event):
    url = reverse("event-detail", args=[event.pk])
    response = client.post(
        "/accounts/signup/",
        {
            "username": "newfan",
            "password1": "a-Long-pass-42",
            "password2": "a-Long-pass-42",
            "next": url,
        },
    )

    assert response.status_code == 302 and response.url == url
    assert "Sign out" in client.get(url).content.decode()


def test_a_5000_seat_event_page_renders_every_seat(client, venue):
    big = make_event(venue, rows=50, seats_per_row=100)
    ids = set(big.seats.values_list("pk", flat=True))

    response = client.get(reverse("event-detail", args=[big.pk]))

    assert response.status_code == 200
    rendered = {int(i) for i in re.findall(r'id="seat-(\d+)"', response.content.decode())}
    assert len(ids) == 5000
    assert rendered == ids


def test_the_seat_map_travels_compressed(client, venue):
    big = make_event(venue, rows=50, seats_per_row=100)

    plain = client.get(reverse("event-detail", args=[big.pk]))
    packed = client.get(reverse("event-detail", args=[big.pk]), HTTP_ACCEPT_ENCODING="gzip")

    assert packed["Content-Encoding"] == "gzip"
    assert len(packed.content) * 5 < len(plain.content)


def test_there_is_no_password_reset_to_an_address_nobody_gave(client):
    assert client.get("/accounts/password_reset/").status_code == 404
    assert client.get("/accounts/login/").status_code == 200
