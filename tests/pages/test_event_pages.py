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
        for m in re.finditer(r'<button [^>]*\bid="seat-(\d+)"[^>]*>', html)
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


# --- around the map: legend, Find N seats, the panel, words --------------------------------


def test_the_legend_names_each_tiers_sections_and_the_seat_marks_the_map_has(client, venue):
    event = make_event(venue, on_sale=False)  # section A at €40
    services.generate_seat_map(
        event_id=event.pk,
        sections=[
            services.SectionSpec("Stalls", 2, 6, Decimal("40"), y=6, wheelchair_rows=("A",)),
            services.SectionSpec("Balcony", 2, 6, Decimal("25"), y=10, restricted_rows=("B",)),
        ],
    )
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE)

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    tiers = re.search(r'<ul class="legend legend-tiers".*?</ul>', html, re.S).group(0)
    assert re.search(r"€25.00 <span[^>]*>· Section Balcony</span>", tiers)
    assert re.search(r"€40.00 <span[^>]*>· Sections A, Stalls</span>", tiers)
    marks = re.search(r'<ul class="legend legend-features".*?</ul>', html, re.S).group(0)
    assert 'data-feature="wheelchair"' in marks and "Wheelchair space" in marks
    assert 'data-feature="companion"' in marks and "Companion seat" in marks
    assert 'data-feature="restricted_view"' in marks and "Restricted view" in marks


def test_a_plain_map_has_no_seat_marks_in_its_legend(client, event):
    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    assert "legend-features" not in html


def test_find_seats_offers_counts_up_to_the_limit_sections_and_top_prices(client, venue):
    event = make_event(venue, on_sale=False, max_seats_per_customer=4)
    services.generate_seat_map(
        event_id=event.pk, sections=[services.SectionSpec("B", 1, 4, Decimal("95"), y=5)]
    )
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE)

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    form = re.search(r'<form [^>]*class="find-form".*?</form>', html, re.S).group(0)
    assert f'action="{reverse("seat-find", args=[event.pk])}"' in form
    count = re.search(r'<select name="count".*?</select>', form, re.S).group(0)
    assert re.findall(r'<option value="(\d+)"', count) == ["1", "2", "3", "4"]
    assert '<option value="2" selected>' in count
    assert '<option value="A">A · €40.00</option>' in form
    assert '<option value="B">B · €95.00</option>' in form
    assert '<option value="40.00">Up to €40.00</option>' in form
    assert 'Find <span class="find-n">2</span> seat<span class="find-s">s</span>' in form


def test_one_section_one_price_asks_only_how_many(client, event):
    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    form = re.search(r'<form [^>]*class="find-form".*?</form>', html, re.S).group(0)
    assert 'name="count"' in form
    assert 'name="section"' not in form and 'name="max_price"' not in form


def hold_panel(html: str) -> str:
    return re.search(r'<aside id="hold-panel".*?</aside>', html, re.S).group(0)


def test_the_panel_has_the_phone_bar_with_count_total_countdown_and_checkout(
    client, event, seat_ids, alice
):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])
    client.force_login(alice)

    panel = hold_panel(client.get(reverse("event-detail", args=[event.pk])).content.decode())

    bar = re.search(r'<div class="hold-bar".*?</form>\s*</div>', panel, re.S).group(0)
    assert '<span class="hold-bar-count">2 seats</span>' in bar
    assert "€80.00" in bar and 'class="countdown"' in bar
    assert f'action="{reverse("checkout", args=[event.pk])}"' in bar
    assert "Checkout</button>" in bar


def test_with_sales_closed_the_panel_offers_no_checkout_and_says_why(
    client, event, seat_ids, alice
):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.CLOSED)
    client.force_login(alice)

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    panel = hold_panel(html)
    assert "can no longer be booked" in panel
    assert "Checkout" not in panel and "countdown" not in panel and "hold-bar" not in panel
    assert "Release all" in panel
    assert '<div class="booking-layout" data-sale-state="closed">' in html
    assert re.search(r'<span id="sale-badge" class="badge badge-closed"[^>]*>Closed</span>', html)
    assert 'data-label-on_sale="On sale"' in html  # for live.js when sales open again


def test_the_page_says_your_seats_and_has_a_skip_link_to_them(client, event, seat_ids, alice):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    client.force_login(alice)

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    assert '<a class="skip-link" href="#hold-panel">Skip to your seats</a>' in html
    panel = hold_panel(html)
    assert 'aria-label="Your seats, held for you"' in panel
    assert "Your seats are held for you for" in panel
    assert 'aria-label="Remove your seat: section A, row A, seat 1"' in panel
    # Template comments never reach the page.
    assert "{#" not in html and "#}" not in html


@pytest.mark.parametrize(
    ("seconds", "limit", "words"),
    [
        (60, 1, "Seats are held for 1 minute, then released. Up to 1 seat per customer."),
        (600, 8, "Seats are held for 10 minutes, then released. Up to 8 seats per customer."),
        (90, 2, "Seats are held for 1 minute 30 seconds, then released. Up to 2 seats"),
        (3660, 2, "Seats are held for 1 hour 1 minute, then released."),
    ],
)
def test_hold_rules_are_said_in_proper_words(client, venue, seconds, limit, words):
    event = make_event(
        venue, hold_duration=timedelta(seconds=seconds), max_seats_per_customer=limit
    )

    html = client.get(reverse("event-detail", args=[event.pk])).content.decode()

    assert words in html
