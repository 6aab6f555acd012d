import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from events.models import Event
from seats import services
from seats.errors import Busy
from seats.models import Seat
from tests.conftest import make_event

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("booking_path")]


def send(client, method, url, body=None, *, raw=None):
    if method == "get":
        return client.get(url)
    data = raw if raw is not None else ("" if body is None else json.dumps(body))
    return getattr(client, method)(url, data=data, content_type="application/json")


def states(seat_ids):
    return [Seat.objects.get(pk=pk).state for pk in seat_ids]


@pytest.fixture
def alice_client(client_for, alice):
    return client_for(alice)


@pytest.fixture
def bob_client(client_for, bob):
    return client_for(bob)


@pytest.fixture
def staff_client(client_for, staff):
    return client_for(staff)


# --- the seat map ---------------------------------------------------------------------


def test_anyone_can_read_the_seat_map(client, alice, event, seat_ids, now):
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[1:2])

    response = client.get(f"/api/events/{event.pk}/seats")

    assert response.status_code == 200
    body = response.json()
    assert body["event"] == event.pk
    assert body["version"] == 2
    assert len(body["seats"]) == len(seat_ids) == 12
    assert body["seats"][0] == {
        "id": seat_ids[0],
        "label": "A-A-1",
        "section": "A",
        "row": "A",
        "number": 1,
        "price": "40.00",
        "state": "held",
    }
    assert [s["state"] for s in body["seats"][:3]] == ["held", "sold", "available"]


def test_the_seat_map_shows_an_expired_hold_as_available(alice, client, event, seat_ids):
    long_ago = timezone.now() - timedelta(hours=1)
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=long_ago)

    body = client.get(f"/api/events/{event.pk}/seats").json()

    assert Seat.objects.get(pk=seat_ids[0]).state == "held"
    assert body["seats"][0]["state"] == "available"


@pytest.mark.parametrize("sale_state", ["on_sale", "closed"])
def test_on_sale_and_closed_events_are_public(client, event, sale_state):
    services.set_sale_state(event_id=event.pk, sale_state=sale_state)

    assert client.get(f"/api/events/{event.pk}/seats").status_code == 200


def test_a_draft_event_is_visible_only_to_staff(client, alice_client, staff_client, venue):
    draft = make_event(venue, on_sale=False)
    url = f"/api/events/{draft.pk}/seats"

    for anyone in (client, alice_client):
        response = anyone.get(url)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert staff_client.get(url).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/api/events/999999/seats",
        "/api/events/abc/seats",
        "/api/nothing-here",
        f"/api/events/{10**30}/seats",
    ],
)
def test_unknown_addresses_answer_json_404(client, url):
    response = client.get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


# --- holds ----------------------------------------------------------------------------


def test_hold_answers_every_seat_now_in_the_hold(alice_client, event, seat_ids):
    url = f"/api/events/{event.pk}/holds"
    first = send(alice_client, "post", url, {"seats": [seat_ids[2]]})

    response = send(alice_client, "post", url, {"seats": [seat_ids[1], seat_ids[0]]})

    assert first.status_code == response.status_code == 201
    body = response.json()
    assert body["hold"] == first.json()["hold"]
    assert body["seats"] == seat_ids[:3]
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at == datetime.fromisoformat(first.json()["expires_at"])
    assert timedelta(minutes=9) < expires_at - timezone.now() <= event.hold_duration
    assert states(seat_ids[:4]) == ["held", "held", "held", "available"]


def test_holding_a_seat_held_by_someone_else_is_409_with_the_taken_seats(
    alice_client, bob, event, seat_ids, db_state
):
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[1:3])
    before = db_state()

    response = send(alice_client, "post", f"/api/events/{event.pk}/holds", {"seats": seat_ids[:3]})

    assert response.status_code == 409
    assert response.json() == {
        "error": "Some of these seats are no longer available.",
        "code": "seats_unavailable",
        "seats": seat_ids[1:3],
    }
    assert db_state() == before


def test_holding_beyond_the_limit_is_409(client_for, alice, venue, db_state):
    event = make_event(venue, max_seats_per_customer=2)
    ids = list(event.seats.order_by("pk").values_list("pk", flat=True))
    before = db_state()

    response = send(client_for(alice), "post", f"/api/events/{event.pk}/holds", {"seats": ids[:3]})

    assert response.status_code == 409
    assert response.json()["code"] == "limit_exceeded"
    assert db_state() == before


# Stand-ins for real seat ids in BAD_BODIES: one of the event's seats, one of another event.
THIS, OTHER = "<this event's seat>", "<other event's seat>"
# Bad bodies for POST .../holds and .../bookings (as JSON, or `raw` when not JSON at all).
BAD_BODIES = [
    pytest.param(None, "seats=1", 400, "invalid", id="not-json"),
    pytest.param(None, "", 400, "invalid", id="empty-body"),
    pytest.param(None, b"\xff\xfe{", 400, "invalid", id="not-utf8"),
    pytest.param(None, "[" * 100_000, 400, "invalid", id="deeply-nested"),
    pytest.param(None, '{"seats": [' + "9" * 5000 + "]}", 400, "invalid", id="huge-number"),
    pytest.param([1, 2], None, 400, "invalid", id="json-list"),
    pytest.param("seats", None, 400, "invalid", id="json-string"),
    pytest.param(None, "null", 400, "invalid", id="json-null"),
    pytest.param({}, None, 400, "invalid", id="no-seats"),
    pytest.param({"seats": []}, None, 400, "invalid", id="empty-list"),
    pytest.param({"seats": "1"}, None, 400, "invalid", id="seats-string"),
    pytest.param({"seats": {"a": 1}}, None, 400, "invalid", id="seats-object"),
    pytest.param({"seats": ["1"]}, None, 400, "invalid", id="id-string"),
    pytest.param({"seats": [1.0]}, None, 400, "invalid", id="id-float"),
    pytest.param({"seats": [True]}, None, 400, "invalid", id="id-bool"),
    pytest.param({"seats": [None]}, None, 400, "invalid", id="id-null"),
    pytest.param({"seats": [-1]}, None, 400, "invalid", id="id-negative"),
    pytest.param(None, '{"seats": [NaN]}', 400, "invalid", id="id-nan"),
    pytest.param({"seats": [THIS, THIS]}, None, 400, "invalid", id="duplicates"),
    pytest.param({"seats": list(range(1, 102))}, None, 400, "invalid", id="too-many"),
    pytest.param({"seats": [999_999]}, None, 400, "unknown_seats", id="unknown-seat"),
    pytest.param({"seats": [2**63]}, None, 400, "invalid", id="id-beyond-bigint"),
    pytest.param({"seats": [THIS, OTHER]}, None, 400, "unknown_seats", id="other-events-seat"),
]


def fill(body, seat_ids, other_id):
    if isinstance(body, dict) and isinstance(body.get("seats"), list):
        swap = {THIS: seat_ids[0], OTHER: other_id}
        return {
            **body,
            "seats": [swap.get(s, s) if isinstance(s, str) else s for s in body["seats"]],
        }
    return body


@pytest.mark.parametrize("path", ["holds", "bookings"])
@pytest.mark.parametrize(("body", "raw", "status", "code"), BAD_BODIES)
def test_bad_requests_are_refused_with_json_and_change_nothing(
    alice, alice_client, venue, event, seat_ids, db_state, path, body, raw, status, code
):
    other = make_event(venue, name="Other")
    # An existing hold must not be extended or touched by a refused request either.
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[5:6])
    before = db_state()

    response = send(
        alice_client,
        "post",
        f"/api/events/{event.pk}/{path}",
        fill(body, seat_ids, other.seats.first().pk),
        raw=raw,
    )

    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code
    assert response.json()["error"]
    assert db_state() == before


@pytest.mark.parametrize("path", ["holds", "bookings"])
def test_unknown_and_draft_events_are_404_and_closed_sales_409(
    alice_client, staff_client, venue, event, seat_ids, db_state, path
):
    draft = make_event(venue, on_sale=False)
    draft_seat = draft.seats.first().pk
    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.CLOSED)
    before = db_state()

    unknown = send(alice_client, "post", f"/api/events/999999/{path}", {"seats": [1]})
    hidden = send(alice_client, "post", f"/api/events/{draft.pk}/{path}", {"seats": [draft_seat]})
    staff_draft = send(
        staff_client, "post", f"/api/events/{draft.pk}/{path}", {"seats": [draft_seat]}
    )
    closed = send(alice_client, "post", f"/api/events/{event.pk}/{path}", {"seats": seat_ids[:1]})

    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found")
    assert (staff_draft.status_code, staff_draft.json()["code"]) == (409, "sale_not_open")
    assert (closed.status_code, closed.json()["code"]) == (409, "sale_not_open")
    assert db_state() == before


# --- bookings -------------------------------------------------------------------------


def test_book_seats_directly(alice_client, event, seat_ids):
    response = send(
        alice_client,
        "post",
        f"/api/events/{event.pk}/bookings",
        {"seats": [seat_ids[4], seat_ids[3]]},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["seats"] == seat_ids[3:5]
    assert body["total"] == "80.00"
    assert states(seat_ids[3:5]) == ["sold", "sold"]


def test_book_a_hold(alice_client, event, seat_ids):
    hold = send(
        alice_client, "post", f"/api/events/{event.pk}/holds", {"seats": seat_ids[:3]}
    ).json()

    response = send(
        alice_client, "post", f"/api/events/{event.pk}/bookings", {"hold": hold["hold"]}
    )

    assert response.status_code == 201
    assert response.json()["seats"] == seat_ids[:3]
    assert response.json()["total"] == "120.00"
    assert states(seat_ids[:3]) == ["sold"] * 3


@pytest.mark.parametrize(
    ("hold", "status", "code"),
    [
        ("1", 400, "invalid"),
        (True, 400, "invalid"),
        (1.0, 400, "invalid"),
        ([1], 400, "invalid"),
        (10**30, 400, "invalid"),
        (0, 400, "invalid"),
        (999_999, 404, "not_found"),
        ("bobs", 404, "not_found"),  # someone else's hold looks like no hold
        ("expired", 409, "conflict"),
    ],
)
def test_booking_a_hold_that_is_not_yours_or_not_a_hold_is_refused(
    alice, bob, alice_client, event, seat_ids, db_state, hold, status, code
):
    bobs = services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1])
    expired = services.hold_seats(
        customer=alice,
        event_id=event.pk,
        seat_ids=seat_ids[1:2],
        now=timezone.now() - timedelta(hours=1),
    )
    if hold in ("bobs", "expired"):
        hold = {"bobs": bobs.pk, "expired": expired.pk}[hold]
    before = db_state()

    response = send(alice_client, "post", f"/api/events/{event.pk}/bookings", {"hold": hold})

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert db_state() == before


def test_booking_a_seat_someone_else_holds_is_409(alice_client, bob, event, seat_ids, db_state):
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[1:2])
    before = db_state()

    response = send(
        alice_client, "post", f"/api/events/{event.pk}/bookings", {"seats": seat_ids[:2]}
    )

    assert response.status_code == 409
    assert response.json()["seats"] == [seat_ids[1]]
    assert db_state() == before


# --- releasing and cancelling ---------------------------------------------------------


def test_release_part_of_a_hold_then_the_rest(alice, alice_client, event, seat_ids):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:3])

    some = send(alice_client, "delete", f"/api/holds/{hold.pk}", {"seats": [seat_ids[1]]})
    rest = send(alice_client, "delete", f"/api/holds/{hold.pk}")

    assert some.status_code == 200
    assert some.json() == {"hold": hold.pk, "seats": [seat_ids[0], seat_ids[2]], "ended": False}
    assert rest.status_code == 200
    assert rest.json() == {"hold": hold.pk, "seats": [], "ended": True}
    assert states(seat_ids[:3]) == ["available"] * 3


@pytest.mark.parametrize(
    ("body", "raw", "status", "code"),
    [
        (None, "seats", 400, "invalid"),
        ([1], None, 400, "invalid"),
        ({"seats": "all"}, None, 400, "invalid"),
        ({"seats": []}, None, 400, "invalid"),
        ({"seats": [THIS, THIS]}, None, 400, "invalid"),
        ({"seats": [OTHER]}, None, 400, "unknown_seats"),
    ],
)
def test_bad_release_requests_change_nothing(
    alice, alice_client, event, seat_ids, db_state, body, raw, status, code
):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])
    before = db_state()
    if isinstance(body, dict) and isinstance(body["seats"], list):
        # OTHER here is a seat of this event that is not in the hold.
        body = {"seats": [{THIS: seat_ids[0], OTHER: seat_ids[5]}[s] for s in body["seats"]]}

    response = send(alice_client, "delete", f"/api/holds/{hold.pk}", body, raw=raw)

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert db_state() == before


def test_only_the_holder_or_staff_may_release(
    alice, bob_client, staff_client, event, seat_ids, db_state
):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])
    before = db_state()

    others = send(bob_client, "delete", f"/api/holds/{hold.pk}")
    unknown = send(bob_client, "delete", "/api/holds/999999")

    # Someone else's hold looks exactly like no hold at all.
    assert others.status_code == unknown.status_code == 404
    assert others.json() == unknown.json()
    assert db_state() == before
    staffs = send(staff_client, "delete", f"/api/holds/{hold.pk}")
    assert staffs.status_code == 200
    assert staffs.json()["ended"] is True
    again = send(staff_client, "delete", f"/api/holds/{hold.pk}")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


def test_cancel_a_booking(alice, alice_client, event, seat_ids):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])

    response = send(alice_client, "delete", f"/api/bookings/{booking.pk}")
    again = send(alice_client, "delete", f"/api/bookings/{booking.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["booking"] == booking.pk
    assert abs(datetime.fromisoformat(body["cancelled_at"]) - timezone.now()) < timedelta(minutes=1)
    assert states(seat_ids[:2]) == ["available", "available"]
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


def test_only_the_customer_or_staff_may_cancel(
    alice, bob_client, staff_client, event, seat_ids, db_state
):
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])
    before = db_state()

    others = send(bob_client, "delete", f"/api/bookings/{booking.pk}")
    unknown = send(bob_client, "delete", f"/api/bookings/{10**30}")

    assert others.status_code == unknown.status_code == 404
    assert others.json() == unknown.json()
    assert db_state() == before
    assert send(staff_client, "delete", f"/api/bookings/{booking.pk}").status_code == 200
    assert states(seat_ids[:2]) == ["available", "available"]


# --- methods, authentication, CSRF, busy ----------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("post", "/api/events/{event}/seats", "GET, HEAD"),
        ("delete", "/api/events/{event}/seats", "GET, HEAD"),
        ("get", "/api/events/{event}/holds", "POST"),
        ("put", "/api/events/{event}/bookings", "POST"),
        ("post", "/api/holds/1", "DELETE"),
        ("get", "/api/bookings/1", "DELETE"),
    ],
)
def test_wrong_methods_are_405_json(alice_client, event, db_state, method, url, allowed):
    before = db_state()

    response = send(alice_client, method, url.format(event=event.pk), {"seats": [1]})

    assert response.status_code == 405
    assert response["Allow"] == allowed
    assert response.json()["code"] == "method_not_allowed"
    assert db_state() == before


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/events/{event}/holds"),
        ("post", "/api/events/{event}/bookings"),
        ("delete", "/api/holds/{hold}"),
        ("delete", "/api/bookings/{booking}"),
    ],
)
def test_anonymous_writes_are_401_json(client, alice, event, seat_ids, db_state, method, url):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[1:2])
    before = db_state()

    response = send(
        client,
        method,
        url.format(event=event.pk, hold=hold.pk, booking=booking.pk),
        {"seats": seat_ids[2:3]},
    )

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert db_state() == before


def test_busy_is_503_with_retry_after(alice_client, event, seat_ids, monkeypatch):
    # The real lock time-out is exercised on PostgreSQL in test_concurrency.py.
    def busy(**kwargs):
        raise Busy("These seats are busy right now; please try again.")

    monkeypatch.setattr(services, "hold_seats", busy)

    response = send(alice_client, "post", f"/api/events/{event.pk}/holds", {"seats": seat_ids[:1]})

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["code"] == "busy"


@pytest.fixture
def csrf_client(client_for, alice, settings):
    settings.CSRF_FAILURE_VIEW = "seats.api.csrf_failure"
    return client_for(alice, enforce_csrf_checks=True)


def test_api_writes_without_the_csrf_token_are_403_json(csrf_client, event, seat_ids, db_state):
    before = db_state()

    response = send(csrf_client, "post", f"/api/events/{event.pk}/holds", {"seats": seat_ids[:1]})

    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert db_state() == before


def test_api_writes_with_the_csrf_token_header_succeed(csrf_client, event, seat_ids):
    token = csrf_client.get(f"/api/events/{event.pk}/seats").cookies["csrftoken"].value

    response = csrf_client.post(
        f"/api/events/{event.pk}/holds",
        data=json.dumps({"seats": seat_ids[:1]}),
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )

    assert response.status_code == 201


def test_csrf_failures_outside_the_api_keep_djangos_page(csrf_client):
    response = csrf_client.post("/accounts/login/", {"username": "alice", "password": "x"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


def test_an_oversized_body_is_413_json(alice_client, event, db_state):
    before = db_state()
    raw = '{"seats": [' + "1, " * 1_000_000 + "1]}"

    response = send(alice_client, "post", f"/api/events/{event.pk}/holds", raw=raw)

    assert (response.status_code, response.json()["code"]) == (413, "too_large")
    assert db_state() == before
