import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from events.models import Event
from seats import services
from tests.admin_actions import act
from tests.conftest import make_event

EVENTS = "admin:events_event_changelist"
SEATS = "admin:seats_seat_changelist"


def generate_url(event):
    return reverse("admin:events_event_generate_seats", args=[event.pk])


def sections_post(*sections):
    data = {"form-TOTAL_FORMS": "3", "form-INITIAL_FORMS": "0"}
    for i, (name, rows, per_row, price) in enumerate(sections):
        data |= {
            f"form-{i}-name": name,
            f"form-{i}-rows": str(rows),
            f"form-{i}-seats_per_row": str(per_row),
            f"form-{i}-price": price,
        }
    return data


def test_non_staff_users_are_sent_to_the_login_page(client, alice, event):
    client.force_login(alice)
    for url in [reverse(EVENTS), generate_url(event), reverse(SEATS)]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_generate_seat_map_creates_the_sections(staff_client, venue):
    event = Event.objects.create(
        name="New show", venue=venue, starts_at=timezone.now() + timedelta(days=10)
    )
    page = staff_client.get(generate_url(event))
    assert page.status_code == 200
    assert b"No seats yet." in page.content

    response = staff_client.post(
        generate_url(event), sections_post(("Stalls", 2, 3, "30.00"), ("Circle", 1, 4, "12.50"))
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:events_event_change", args=[event.pk])
    labels = {s.label: s.price for s in event.seats.all()}
    assert sorted(labels) == sorted(
        [f"Stalls-{r}-{n}" for r in "AB" for n in (1, 2, 3)]
        + [f"Circle-A-{n}" for n in range(1, 5)]
    )
    assert labels["Stalls-B-3"] == Decimal("30.00")
    assert labels["Circle-A-4"] == Decimal("12.50")
    assert set(event.seats.values_list("state", flat=True)) == {"available"}
    assert "Created 10 seats in Stalls, Circle." in [
        str(m) for m in get_messages(response.wsgi_request)
    ]


def test_generate_seat_map_is_refused_once_sales_opened(staff_client, event):
    before = event.seats.count()
    page = staff_client.get(generate_url(event))
    assert b"seats can only be" in page.content

    response = staff_client.post(generate_url(event), sections_post(("Extra", 1, 5, "10")))

    assert response.status_code == 409
    assert b"Seats can only be added while the event is a draft." in response.content
    assert event.seats.count() == before


@pytest.mark.parametrize(
    "sections, status, error",
    [
        ([("Stalls", 0, 3, "30")], 400, b"greater than or equal to 1"),
        ([("Stalls", 2, 3, "-1")], 400, b"greater than or equal to 0"),
        ([("Stalls", 1, 3, "30"), ("Stalls", 1, 3, "30")], 400, b"may be used once"),
        ([], 400, b"Please submit at least 1 form"),
        # "A" is already on the draft event's map.
        ([("A", 1, 3, "30")], 409, b"Each section name may be used once per event."),
    ],
)
def test_generate_seat_map_rejects_bad_sections(staff_client, draft_event, sections, status, error):
    response = staff_client.post(generate_url(draft_event), sections_post(*sections))

    assert response.status_code == status
    assert error in response.content
    assert draft_event.seats.count() == 1


def test_open_and_close_sales_actions(staff_client, draft_event):
    messages = act(staff_client, EVENTS, "open_sales", [draft_event.pk])
    draft_event.refresh_from_db()
    assert draft_event.sale_state == "on_sale"
    assert messages == ["Now on sale: Premiere."]

    act(staff_client, EVENTS, "close_sales", [draft_event.pk])
    draft_event.refresh_from_db()
    assert draft_event.sale_state == "closed"


def test_occupancy_counts_what_viewers_see(staff_client, event, seat_ids, alice, bob, staff, now):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    # Bob's hold has expired but the sweeper has not released it: those seats show as free.
    services.hold_seats(
        customer=bob, event_id=event.pk, seat_ids=seat_ids[2:5], now=now - timedelta(hours=1)
    )
    services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[5:6], now=now)
    services.block_seats(event_id=event.pk, seat_ids=seat_ids[6:8], actor=staff, now=now)

    listing = staff_client.get(reverse(EVENTS)).content.decode()
    assert '<td class="field-occupancy_available">7</td>' in listing
    assert '<td class="field-occupancy_held">2</td>' in listing
    assert '<td class="field-occupancy_sold">1</td>' in listing
    assert '<td class="field-occupancy_blocked">2</td>' in listing

    page = staff_client.get(reverse("admin:events_event_change", args=[event.pk]))
    assert b"7 available / 2 held / 1 sold / 2 blocked" in page.content


def test_event_list_queries_do_not_grow_with_the_number_of_events(staff_client, venue):
    make_event(venue, name="One")
    with CaptureQueriesContext(connection) as one_event:
        staff_client.get(reverse(EVENTS))
    for n in range(5):
        make_event(venue, name=f"More {n}")
    with CaptureQueriesContext(connection) as six_events:
        response = staff_client.get(reverse(EVENTS))

    assert response.context["cl"].result_count == 6
    assert len(six_events) == len(one_event)


def test_event_form_cannot_change_sale_state_or_version(staff_client, staff, draft_event):
    url = reverse("admin:events_event_change", args=[draft_event.pk])
    services.set_sale_state(event_id=draft_event.pk, sale_state="on_sale")
    services.block_seats(
        event_id=draft_event.pk, seat_ids=[draft_event.seats.get().pk], actor=staff
    )

    response = staff_client.post(
        url,
        {
            "name": "Premiere (matinee)",
            "venue": draft_event.venue_id,
            "starts_at_0": "2030-01-01",
            "starts_at_1": "15:00:00",
            "hold_duration": "00:05:00",
            "max_seats_per_customer": "4",
            "sale_state": "draft",
            "version": "0",
        },
    )

    assert response.status_code == 302
    draft_event.refresh_from_db()
    assert draft_event.name == "Premiere (matinee)"
    assert draft_event.hold_duration == timedelta(minutes=5)
    # Two versions: opening the sale and blocking the seat; the form's own values are ignored.
    assert (draft_event.sale_state, draft_event.version) == ("on_sale", 2)


def test_an_events_page_links_to_its_seat_change_history(staff_client, event, seat_ids, alice):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])
    page = staff_client.get(reverse("admin:events_event_change", args=[event.pk]))
    [link] = re.findall(r'<a href="([^"]*seatchange[^"]*)">History</a>', page.content.decode())

    history = staff_client.get(html.unescape(link))

    assert history.status_code == 200
    rows = history.context["cl"].result_list
    assert [(c.seat_id, c.cause, c.actor_id) for c in rows] == [
        (seat_ids[0], "hold", alice.pk),
        (seat_ids[1], "hold", alice.pk),
    ]
