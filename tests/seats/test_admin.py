"""Staff admin of seats, holds, bookings and the seat-change log (seats/admin.py)."""

import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from seats import services
from seats.admin import seat_changes_url
from seats.models import Booking, Hold, Seat, SeatChange
from tests.admin_actions import act
from tests.conftest import make_event, make_user

SEATS = "admin:seats_seat_changelist"
CHANGES = "admin:seats_seatchange_changelist"


def states(seat_ids):
    return list(Seat.objects.filter(pk__in=seat_ids).order_by("pk").values_list("state", flat=True))


CELL = re.compile(r'class="field-(\w+)[^"]*"[^>]*>(.*?)</t[dh]>', re.S)


def listed(response):
    """The change-list rows as shown: one dict per row, column name -> cell text."""
    body = response.content.decode()
    if 'id="result_list"' not in body:
        return []
    table = body[body.index('id="result_list"') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table[table.index("<tbody>") :], re.S)
    return [
        {name: unescape(re.sub(r"<[^>]+>", "", text)).strip() for name, text in CELL.findall(row)}
        for row in rows
    ]


def test_block_and_unblock_actions_go_through_the_services(staff_client, staff, event, seat_ids):
    version = event.version

    messages = act(staff_client, SEATS, "block_seats", seat_ids[:2])

    assert messages == ["Blocked 2 of 2 selected seats."]
    assert states(seat_ids[:2]) == ["blocked", "blocked"]
    event.refresh_from_db()
    assert event.version == version + 1
    change = SeatChange.objects.get(seat_id=seat_ids[0])
    assert (change.from_state, change.to_state, change.actor, change.cause) == (
        "available",
        "blocked",
        staff,
        "block",
    )

    act(staff_client, SEATS, "unblock_seats", seat_ids[:3])

    assert states(seat_ids[:3]) == ["available"] * 3
    event.refresh_from_db()
    assert event.version == version + 2


def test_blocking_a_sold_seat_changes_nothing(staff_client, alice, event, seat_ids, now):
    services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    event.refresh_from_db()
    version = event.version

    messages = act(staff_client, SEATS, "block_seats", seat_ids[:3])

    assert messages == ["Nothing changed: Held or sold seats cannot be blocked. (A-A-1)"]
    assert states(seat_ids[:3]) == ["sold", "available", "available"]
    event.refresh_from_db()
    assert event.version == version


def test_blocking_across_events_is_all_or_nothing(staff_client, alice, venue, now):
    first = make_event(venue, name="First")
    second = make_event(venue, name="Second")
    free = first.seats.order_by("pk").first()
    sold = second.seats.order_by("pk").first()
    services.book_seats(customer=alice, event_id=second.pk, seat_ids=[sold.pk], now=now)

    messages = act(staff_client, SEATS, "block_seats", [free.pk, sold.pk])

    assert messages[0].startswith("Nothing changed")
    assert states([free.pk, sold.pk]) == ["available", "sold"]


def test_cancel_booking_action_puts_the_seats_back_on_sale(
    staff_client, alice, event, seat_ids, now
):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    changelist = "admin:seats_booking_changelist"
    assert (
        b"A-A-1 (40.00), A-A-2 (40.00)"
        in staff_client.get(reverse("admin:seats_booking_change", args=[booking.pk])).content
    )

    messages = act(staff_client, changelist, "cancel", [booking.pk])

    assert messages == [f"Cancelled booking {booking.pk}; its seats are on sale again."]
    assert states(seat_ids[:2]) == ["available", "available"]
    booking.refresh_from_db()
    assert booking.is_cancelled

    again = act(staff_client, changelist, "cancel", [booking.pk])
    assert again == [f"Booking {booking.pk}: This booking is already cancelled."]


def test_release_hold_action(staff_client, alice, event, seat_ids, now):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:3], now=now)

    messages = act(staff_client, "admin:seats_hold_changelist", "release", [hold.pk])

    assert messages == [f"Released hold {hold.pk} (3 seats)."]
    assert states(seat_ids[:3]) == ["available"] * 3
    hold.refresh_from_db()
    assert hold.end_reason == Hold.EndReason.RELEASED


def test_holds_and_bookings_cannot_be_added_edited_or_deleted(
    staff_client, alice, event, seat_ids, now
):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[1:2], now=now)
    for model, obj in [("booking", booking), ("hold", hold)]:
        assert staff_client.get(reverse(f"admin:seats_{model}_add")).status_code == 403
        change_url = reverse(f"admin:seats_{model}_change", args=[obj.pk])
        assert staff_client.get(change_url).status_code == 200
        assert staff_client.post(change_url, {"total": "0.00"}).status_code == 403
        delete_url = reverse(f"admin:seats_{model}_delete", args=[obj.pk])
        assert staff_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Booking.objects.get(pk=booking.pk).total == Decimal("40.00")
    assert Hold.objects.filter(pk=hold.pk).exists()


def test_seat_state_is_not_editable(staff_client, draft_event, event, seat_ids):
    draft_seat = draft_event.seats.get()
    url = reverse("admin:seats_seat_change", args=[draft_seat.pk])
    form = {
        "section": "A",
        "row_label": "A",
        "number": "1",
        "x": "1",
        "y": "1",
        "price": "99.00",
        "state": "sold",
    }

    assert staff_client.post(url, form).status_code == 302

    draft_seat.refresh_from_db()
    assert (draft_seat.price, draft_seat.state) == (Decimal("99.00"), "available")

    # On sale, nothing about a seat is editable.
    on_sale_url = reverse("admin:seats_seat_change", args=[seat_ids[0]])
    assert b'name="price"' not in staff_client.get(on_sale_url).content
    staff_client.post(on_sale_url, form)
    seat = Seat.objects.get(pk=seat_ids[0])
    assert (seat.price, seat.state) == (Decimal("40.00"), "available")


def test_seats_are_deleted_only_while_their_event_is_a_draft(
    staff_client, draft_event, event, seat_ids
):
    messages = act(staff_client, SEATS, "delete_selected", seat_ids[:1])
    assert messages == ["Nothing deleted: seats can only be deleted while their event is a draft."]
    assert Seat.objects.filter(pk=seat_ids[0]).exists()

    draft_seat = draft_event.seats.get()
    response = staff_client.post(
        reverse(SEATS),
        {"action": "delete_selected", "_selected_action": [str(draft_seat.pk)], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Seat.objects.filter(pk=draft_seat.pk).exists()


# --- the seat-change log ------------------------------------------------------------------


def test_a_seats_history_shows_its_changes_in_version_order_with_who_and_how(
    staff_client, staff, alice, bob, event, seat_ids, now
):
    seat = seat_ids[0]
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=[seat, seat_ids[1]], now=now)
    services.expire_holds(now=now + timedelta(hours=1))
    booking = services.book_seats(
        customer=bob, event_id=event.pk, seat_ids=[seat], now=now + timedelta(hours=2)
    )
    services.cancel_booking(booking_id=booking.pk, actor=staff, now=now + timedelta(hours=3))
    services.block_seats(event_id=event.pk, seat_ids=[seat], actor=staff)
    services.unblock_seats(event_id=event.pk, seat_ids=[seat], actor=staff)
    # Another seat's change is not part of this seat's history.
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=[seat_ids[2]], now=now)

    seat_page = staff_client.get(reverse("admin:seats_seat_change", args=[seat]))
    assert seat_changes_url(seat_id=seat).replace("&", "&amp;") in seat_page.content.decode()
    history = staff_client.get(seat_changes_url(seat_id=seat))

    assert history.status_code == 200
    rows = [
        (row["version"], row["seat_label"], row["transition"], row["who"], row["cause"])
        for row in listed(history)
    ]
    assert rows == [
        ("1", "A-A-1", "available → held", "alice", "hold"),
        ("2", "A-A-1", "held → available", "system", "expire"),
        ("3", "A-A-1", "available → sold", "bob", "book"),
        ("4", "A-A-1", "sold → available", "staff", "cancel"),
        ("5", "A-A-1", "available → blocked", "staff", "block"),
        ("6", "A-A-1", "blocked → available", "staff", "unblock"),
    ]
    # The filter sidebar names the seat whose history this is.
    assert "A-A-1 (Concert)" in history.content.decode()
    assert listed(staff_client.get(seat_changes_url(seat_id=999_999))) == []


def test_the_change_log_cannot_be_added_to_changed_or_deleted(staff_client, alice, event, seat_ids):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    change = SeatChange.objects.get()
    change_url = reverse("admin:seats_seatchange_change", args=[change.pk])

    listing = staff_client.get(reverse(CHANGES)).content.decode()
    page = staff_client.get(change_url)

    assert 'name="action"' not in listing  # no actions, not even "delete selected"
    assert reverse("admin:seats_seatchange_add") not in listing
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert reverse("admin:seats_seatchange_delete", args=[change.pk]) not in page.content.decode()
    assert staff_client.get(reverse("admin:seats_seatchange_add")).status_code == 403
    assert staff_client.post(change_url, {"to_state": "sold", "cause": "book"}).status_code == 403
    delete_url = reverse("admin:seats_seatchange_delete", args=[change.pk])
    assert staff_client.post(delete_url, {"post": "yes"}).status_code == 403
    after = SeatChange.objects.get()
    assert (after.to_state, after.cause) == ("held", "hold")


def test_the_change_log_filters_by_event_cause_and_state_and_finds_seats_and_customers(
    staff_client, staff, alice, bob, venue, now
):
    first, second = make_event(venue, name="First"), make_event(venue, name="Second")
    one = list(first.seats.order_by("pk").values_list("pk", flat=True)[:3])
    two = list(second.seats.order_by("pk").values_list("pk", flat=True)[:2])
    services.hold_seats(customer=alice, event_id=first.pk, seat_ids=one[:2], now=now)
    services.book_seats(customer=bob, event_id=first.pk, seat_ids=one[2:], now=now)
    services.block_seats(event_id=second.pk, seat_ids=two, actor=staff, now=now)

    def shown(**query):
        return sorted(
            (row["event"], row["seat_label"], row["cause"])
            for row in listed(staff_client.get(reverse(CHANGES), query))
        )

    assert shown(event__id__exact=second.pk) == [
        ("Second", "A-A-1", "block"),
        ("Second", "A-A-2", "block"),
    ]
    assert shown(event__id__exact=first.pk, cause="book") == [("First", "A-A-3", "book")]
    assert shown(to_state="held") == [("First", "A-A-1", "hold"), ("First", "A-A-2", "hold")]
    assert shown(q="bob") == [("First", "A-A-3", "book")]
    assert shown(q="A-A-2") == [("First", "A-A-2", "hold"), ("Second", "A-A-2", "block")]
    assert shown(q="A-A-2", event__id__exact=second.pk) == [("Second", "A-A-2", "block")]
    assert staff_client.get(seat_changes_url(event_id=first.pk)).status_code == 200
    assert len(listed(staff_client.get(seat_changes_url(event_id=first.pk)))) == 3


def test_the_change_log_page_costs_the_same_queries_for_few_rows_or_many(staff_client, venue, now):
    event = make_event(venue, rows=5, seats_per_row=10, max_seats_per_customer=10)
    seat_ids = list(event.seats.order_by("pk").values_list("pk", flat=True))
    customers = [make_user(f"fan{i}") for i in range(5)]
    services.hold_seats(customer=customers[0], event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    with CaptureQueriesContext(connection) as few:
        assert len(listed(staff_client.get(reverse(CHANGES)))) == 1
    for i, customer in enumerate(customers):
        ids = seat_ids[1 + 9 * i : 10 + 9 * i]
        services.book_seats(customer=customer, event_id=event.pk, seat_ids=ids, now=now)
    with CaptureQueriesContext(connection) as many:
        assert len(listed(staff_client.get(reverse(CHANGES)))) == 46

    assert len(many) == len(few)


def test_non_staff_users_cannot_see_the_change_log(client, alice):
    client.force_login(alice)

    response = client.get(reverse(CHANGES))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_seats_list_shows_their_place_and_features_and_filters_by_them(staff_client, venue):
    event = make_event(venue, rows=2, seats_per_row=3)
    Seat.objects.filter(event=event, row_label="A", number=1).update(wheelchair=True)
    Seat.objects.filter(event=event, row_label="A", number=2).update(companion=True)
    Seat.objects.filter(event=event, row_label="B").update(restricted_view=True)

    def labels(**query):
        response = staff_client.get(reverse(SEATS), {"event__id__exact": event.pk, **query})
        return sorted(row["label"] for row in listed(response))

    sidebar = staff_client.get(reverse(SEATS)).context["cl"].filter_specs
    assert {"wheelchair space", "companion seat", "restricted view"} <= {f.title for f in sidebar}
    assert labels(wheelchair__exact=1) == ["A-A-1"]
    assert labels(companion__exact=1) == ["A-A-2"]
    assert labels(restricted_view__exact=1) == ["A-B-1", "A-B-2", "A-B-3"]
    assert labels(restricted_view__exact=0, wheelchair__exact=0) == ["A-A-2", "A-A-3"]
    seat = Seat.objects.get(event=event, row_label="B", number=3)
    [row] = [r for r in listed(staff_client.get(reverse(SEATS))) if r["label"] == "A-B-3"]
    assert row["position"] == f"{seat.x:g}, {seat.y:g}"


def test_a_draft_seats_place_and_features_are_edited_and_fixed_once_on_sale(
    staff_client, draft_event, event, seat_ids
):
    draft_seat = draft_event.seats.get()
    form = {
        "section": "A",
        "row_label": "A",
        "number": "1",
        "x": "-12.5",
        "y": "3.25",
        "price": "40.00",
        "wheelchair": "on",
        "restricted_view": "on",
    }

    response = staff_client.post(reverse("admin:seats_seat_change", args=[draft_seat.pk]), form)

    assert response.status_code == 302
    draft_seat.refresh_from_db()
    assert (draft_seat.x, draft_seat.y) == (-12.5, 3.25)
    assert draft_seat.features == ["wheelchair", "restricted_view"]

    on_sale_url = reverse("admin:seats_seat_change", args=[seat_ids[0]])
    page = staff_client.get(on_sale_url).content.decode()
    assert 'name="wheelchair"' not in page and 'name="x"' not in page
    staff_client.post(on_sale_url, form)
    seat = Seat.objects.get(pk=seat_ids[0])
    assert seat.features == [] and (seat.x, seat.y) != (-12.5, 3.25)
