import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from events.models import Event
from seats import services
from seats.fragments import seat_map_html
from seats.selectors import public_seats
from tests.admin_actions import act
from tests.conftest import make_event

EVENTS = "admin:events_event_changelist"
SEATS = "admin:seats_seat_changelist"


def generate_url(event):
    return reverse("admin:events_event_generate_seats", args=[event.pk])


def import_url(event):
    return reverse("admin:events_event_import_layout", args=[event.pk])


def preview_url(event):
    return reverse("admin:events_event_seat_map_preview", args=[event.pk])


def sections_post(*sections, **extra):
    """The generator's form: (name, rows, seats per row, price) per section; `extra` adds
    fields of the first section (x, y, angle, curve, wheelchair_rows, restricted_rows)."""
    data = {"form-TOTAL_FORMS": "3", "form-INITIAL_FORMS": "0"}
    for i, (name, rows, per_row, price) in enumerate(sections):
        data |= {
            f"form-{i}-name": name,
            f"form-{i}-rows": str(rows),
            f"form-{i}-seats_per_row": str(per_row),
            f"form-{i}-price": price,
        }
    return data | {f"form-0-{name}": value for name, value in extra.items()}


def test_non_staff_users_are_sent_to_the_login_page(client, alice, event):
    client.force_login(alice)
    for url in [
        reverse(EVENTS),
        generate_url(event),
        import_url(event),
        preview_url(event),
        reverse(SEATS),
    ]:
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
    assert response["Location"] == preview_url(event)
    labels = {s.label: s.price for s in event.seats.all()}
    assert sorted(labels) == sorted(
        [f"Stalls-{r}-{n}" for r in "AB" for n in (1, 2, 3)]
        + [f"Circle-A-{n}" for n in range(1, 5)]
    )
    assert labels["Stalls-B-3"] == Decimal("30.00")
    assert labels["Circle-A-4"] == Decimal("12.50")
    assert set(event.seats.values_list("state", flat=True)) == {"available"}
    assert "Created 10 seats in Stalls, Circle. This is the seat map customers will see." in [
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
        ([], 400, b"Add at least one section"),
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


def test_an_empty_seat_generator_asks_for_a_section_in_words_staff_understand(
    staff_client, draft_event
):
    response = staff_client.post(generate_url(draft_event), sections_post())

    assert response.status_code == 400
    body = response.content.decode()
    assert "Add at least one section: fill in its name, rows, seats per row and price." in body
    assert "Please submit at least" not in body
    assert draft_event.seats.count() == 1


def test_the_generator_places_sections_at_an_angle_and_flags_rows(staff_client, draft_event):
    response = staff_client.post(
        generate_url(draft_event),
        sections_post(
            ("Box Left", 2, 4, "120.00"),
            x="-15",
            y="2",
            angle="90",
            curve="",
            wheelchair_rows="a",
            restricted_rows="B-B",
        ),
    )

    assert response.status_code == 302
    box = draft_event.seats.filter(section="Box Left")
    # Along the left wall near the stage, facing the middle: the back row against the wall.
    assert set(box.filter(row_label="A").values_list("x", flat=True)) == {-15}
    assert set(box.filter(row_label="B").values_list("x", flat=True)) == {-16}
    assert max(box.values_list("y", flat=True)) < 4
    assert sorted(box.filter(wheelchair=True).values_list("row_label", "number")) == [
        ("A", 1),
        ("A", 4),
    ]
    assert sorted(box.filter(companion=True).values_list("number", flat=True)) == [2, 3]
    assert set(box.filter(restricted_view=True).values_list("row_label", flat=True)) == {"B"}


def test_the_generator_bends_rows_into_a_curve(staff_client, draft_event):
    staff_client.post(
        generate_url(draft_event), sections_post(("Stalls", 3, 11, "45"), y="3", curve="60")
    )

    front = dict(
        draft_event.seats.filter(section="Stalls", row_label="A").values_list("number", "y")
    )
    # The ends of a curved front row come forward of its middle, towards the stage.
    assert front[6] == 3
    assert front[1] == front[11] < 3


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"wheelchair_rows": "C"}, "“C” is not a row of this section (rows A–B)."),
        ({"restricted_rows": "A-Q"}, "“A-Q” is not a row of this section"),
        ({"angle": "200"}, "Ensure this value is less than or equal to 180."),
        ({"curve": "-5"}, "Ensure this value is greater than or equal to 0."),
        ({"x": "inf"}, "Enter a number."),
        ({"y": "north"}, "Enter a number."),
    ],
)
def test_bad_placement_or_rows_are_form_errors_and_create_nothing(
    staff_client, draft_event, fields, error
):
    response = staff_client.post(
        generate_url(draft_event), sections_post(("Stalls", 2, 4, "45"), **fields)
    )

    assert response.status_code == 400
    assert error in response.content.decode()
    assert draft_event.seats.count() == 1


# --- importing a layout ---------------------------------------------------------------------

LAYOUT_CSV = (
    "section,row,number,x,y,price,attributes\n"
    "Stalls,A,1,-0.5,3,45.00,wheelchair\n"
    "Stalls,A,2,0.5,3,45.00,companion\n"
    "Box Left,A,1,-14,1.5,120,restricted_view\n"
)


def upload(name, text):
    return SimpleUploadedFile(name, text if isinstance(text, bytes) else text.encode())


def test_importing_a_layout_adds_its_seats_and_shows_the_preview(staff_client, draft_event):
    response = staff_client.post(
        import_url(draft_event), {"layout": upload("hall.csv", LAYOUT_CSV)}
    )

    assert response.status_code == 302
    assert response["Location"] == preview_url(draft_event)
    seats = {s.label: (s.x, s.y, s.price, s.features) for s in draft_event.seats.all()}
    assert seats["Stalls-A-1"] == (-0.5, 3, Decimal("45.00"), ["wheelchair"])
    assert seats["Box Left-A-1"] == (-14, 1.5, Decimal("120.00"), ["restricted_view"])
    assert len(seats) == 4


def test_a_json_layout_imports_too(staff_client, draft_event):
    layout = '[{"section": "Box", "row": "A", "number": 1, "x": 9, "y": 1, "price": 120}]'

    response = staff_client.post(import_url(draft_event), {"layout": upload("hall.json", layout)})

    assert response.status_code == 302
    assert draft_event.seats.filter(section="Box", price=Decimal("120")).count() == 1


def test_a_layout_with_mistakes_lists_every_bad_line_and_imports_nothing(staff_client, draft_event):
    bad = LAYOUT_CSV + "Stalls,A,3,1.5,3,cheap,\nStalls,A,2,2.5,3,45,\nA,A,1,9,9,5,\n"

    response = staff_client.post(import_url(draft_event), {"layout": upload("hall.csv", bad)})

    assert response.status_code == 400
    body = html.unescape(response.content.decode())
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td></tr>", body)
    assert [line for line, _ in rows] == ["5", "6"]
    assert "price must be an amount like 45.00" in rows[0][1]
    assert "Stalls-A-2 is given twice (first on line 3)" in rows[1][1]
    assert "Nothing was imported: 2 problem(s) in the file." in body
    assert draft_event.seats.count() == 1

    # Once the file itself is right, a seat already on the map is named by its line too.
    clash = staff_client.post(
        import_url(draft_event), {"layout": upload("hall.csv", LAYOUT_CSV + "A,A,1,9,9,5,\n")}
    )
    assert clash.status_code == 400
    assert "A-A-1 is already on the map" in html.unescape(clash.content.decode())
    assert draft_event.seats.count() == 1


@pytest.mark.parametrize(
    "data, error",
    [
        ({}, "This field is required."),
        ({"layout": upload("hall.csv", b"section,row\xff\xfe")}, "not UTF-8 text"),
        ({"layout": upload("hall.csv", "x" * 200)}, "The file is over"),
    ],
)
def test_an_unreadable_upload_is_a_form_error(staff_client, draft_event, monkeypatch, data, error):
    monkeypatch.setattr("events.admin.MAX_LAYOUT_BYTES", 100)

    response = staff_client.post(import_url(draft_event), data)

    assert response.status_code == 400
    assert error in response.content.decode()
    assert draft_event.seats.count() == 1


def test_layouts_are_imported_only_into_drafts(staff_client, event):
    response = staff_client.post(import_url(event), {"layout": upload("hall.csv", LAYOUT_CSV)})

    assert response.status_code == 409
    assert "Seats can only be added while the event is a draft." in response.content.decode()
    assert event.seats.count() == 12


# --- the preview ----------------------------------------------------------------------------


def test_the_preview_shows_a_drafts_map_as_customers_will_see_it(staff_client, draft_event):
    staff_client.post(
        generate_url(draft_event),
        sections_post(
            ("Stalls", 2, 5, "45"), ("Box", 1, 2, "120"), y="3", curve="40", wheelchair_rows="B"
        ),
    )
    seat = draft_event.seats.get(section="Stalls", row_label="B", number=1)

    response = staff_client.get(preview_url(draft_event))

    assert response.status_code == 200
    body = response.content.decode()
    for asset in ("css/site.css", "css/seatmap.css", "js/seatmap.js"):
        assert f"/static/{asset}" in body
    # The customers' own fragment, whole: a button per seat, placed by its x/y.
    seats = public_seats(event_id=draft_event.pk, now=timezone.now())
    assert seat_map_html(seats) in body
    assert body.count('name="seat"') == 13 and f'id="seat-{seat.pk}"' in body
    assert "€45.00" in body and "€120.00" in body
    legend = re.sub(r"<[^>]+>", "", body)
    assert "Wheelchair space (2)" in legend and "Companion seat (2)" in legend
    assert "Restricted view (" not in legend
    summary = re.findall(
        r'<th scope="row">([^<]*)</th>\s*<td>(\d+)</td>\s*<td>(\d+)</td>\s*<td>([^<]*)</td>'
        r"\s*<td>(\d+)</td>\s*<td>(\d+)</td>\s*<td>(\d+)</td>",
        body,
    )
    assert summary == [
        ("A", "1", "1", "40.00", "0", "0", "0"),
        ("Stalls", "2", "10", "45.00", "2", "2", "0"),
        ("Box", "1", "2", "120.00", "0", "0", "0"),
    ]


def test_the_event_page_links_to_the_preview_and_the_layout_import(
    staff_client, draft_event, event
):
    draft_page = staff_client.get(reverse("admin:events_event_change", args=[draft_event.pk]))
    on_sale_page = staff_client.get(reverse("admin:events_event_change", args=[event.pk]))

    assert preview_url(draft_event) in draft_page.content.decode()
    assert import_url(draft_event) in draft_page.content.decode()
    assert preview_url(event) in on_sale_page.content.decode()
    assert import_url(event) not in on_sale_page.content.decode()
    assert staff_client.get(preview_url(event)).status_code == 200
