"""POST /api/events/<id>/holds with {"best_available": {...}}: the server picks the seats."""

import json

import pytest

from seats import services
from seats.models import Hold, Seat
from tests.conftest import make_event
from tests.seats.test_ratelimits import freeze_clock

pytestmark = pytest.mark.django_db

KEY = "6c1f8a52-0d7e-4b9a-8c3e-5f2a9d1b7e40"


def post(client, event, body, *, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        f"/api/events/{event.pk}/holds",
        data=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


@pytest.fixture
def alice_client(client_for, alice):
    return client_for(alice)


@pytest.fixture
def event(venue):
    # One section "A": rows A-C of 6 seats at €40, 8 seats per customer.
    return make_event(venue, rows=3, seats_per_row=6, max_seats_per_customer=8)


def places(seat_ids):
    return [
        (s.row_label, s.number)
        for s in Seat.objects.filter(pk__in=seat_ids).order_by("row_label", "number")
    ]


def test_best_available_holds_a_block_side_by_side_and_answers_like_a_hold(alice_client, event):
    response = post(alice_client, event, {"best_available": {"count": 3}})

    assert response.status_code == 201
    body = response.json()
    hold = Hold.objects.get(pk=body["hold"])
    assert sorted(body) == ["expires_at", "groups", "hold", "seats", "together"]
    assert body["expires_at"] == hold.expires_at.isoformat()
    # The front row: 2-4 and 3-5 are closest but would leave seat 1 or 6 alone; 1-3 and 4-6
    # strand nothing and are mirror images, and the lower numbers break the tie.
    assert places(body["seats"]) == [("A", 1), ("A", 2), ("A", 3)]
    assert sorted(hold.seats.values_list("pk", flat=True)) == body["seats"]
    assert (body["groups"], body["together"]) == ([body["seats"]], True)


def test_best_available_adds_to_the_customers_hold(alice_client, event):
    first = post(alice_client, event, {"best_available": {"count": 2}}).json()

    second = post(alice_client, event, {"best_available": {"count": 2}}).json()

    assert second["hold"] == first["hold"]
    assert len(second["seats"]) == 4 and set(first["seats"]) < set(second["seats"])
    # "groups" are the seats just held; "seats" all the hold has.
    assert second["groups"] == [sorted(set(second["seats"]) - set(first["seats"]))]


def test_picked_seats_answer_without_groups(alice_client, event):
    body = post(alice_client, event, {"seats": [event.seats.first().pk]}).json()

    assert sorted(body) == ["expires_at", "hold", "seats"]


def test_section_and_max_price_are_passed_on(alice_client, venue):
    event = make_event(venue, rows=1, seats_per_row=4, price="30.00")

    cheap = post(alice_client, event, {"best_available": {"count": 2, "max_price": "30"}})
    dear = post(alice_client, event, {"best_available": {"count": 2, "max_price": "29.99"}})
    elsewhere = post(alice_client, event, {"best_available": {"count": 1, "section": "B"}})

    assert cheap.status_code == 201
    assert (dear.status_code, dear.json()["together"]) == (409, 0)
    assert dear.json()["error"] == (
        "No 2 seats side by side are free at €29.99 or less; no seat is."
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (400, "invalid")
    assert 'no section "B"; its sections are A' in elsewhere.json()["error"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"best_available": None}, "must be an object"),
        ({"best_available": [2]}, "must be an object"),
        ({"best_available": 2}, "must be an object"),
        ({"best_available": {}}, '"count" must be a whole number'),
        ({"best_available": {"count": "2"}}, '"count" must be a whole number'),
        ({"best_available": {"count": 2.0}}, '"count" must be a whole number'),
        ({"best_available": {"count": True}}, '"count" must be a whole number'),
        ({"best_available": {"count": 0}}, "Ask for 1 to 100 seats"),
        ({"best_available": {"count": 101}}, "Ask for 1 to 100 seats"),
        ({"best_available": {"count": 10**30}}, "Ask for 1 to 100 seats"),
        ({"best_available": {"count": 2, "section": 7}}, '"section" must be a section name'),
        ({"best_available": {"count": 2, "section": " "}}, '"section" must be a section name'),
        ({"best_available": {"count": 2, "max_price": 45.5}}, '"max_price" must be an amount'),
        ({"best_available": {"count": 2, "max_price": "-1"}}, '"max_price" must be an amount'),
        ({"best_available": {"count": 2, "max_price": "1.234"}}, '"max_price" must be an'),
        ({"best_available": {"count": 2, "max_price": "NaN"}}, '"max_price" must be an amount'),
        ({"best_available": {"count": 2, "max_price": "1e3"}}, '"max_price" must be an amount'),
        ({"best_available": {"count": 2, "max_price": True}}, '"max_price" must be an amount'),
        ({"best_available": {"count": 2, "split": "yes"}}, '"split" must be true or false'),
        ({"best_available": {"count": 2, "split": 1}}, '"split" must be true or false'),
        ({"best_available": {"count": 2, "split": None}}, '"split" must be true or false'),
        ({"best_available": {"count": 2, "seats": [1]}}, 'Unknown best_available field "seats"'),
        ({"best_available": {"count": 2}, "seats": [1]}, 'either "seats" or "best_available"'),
    ],
)
def test_bad_requests_are_400_with_a_message_and_change_nothing(
    alice_client, event, db_state, body, says
):
    before = db_state()

    response = post(alice_client, event, body)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert says in response.json()["error"]
    assert db_state() == before


def test_nothing_that_fits_is_409_saying_how_many_are_together(alice_client, event, db_state):
    before = db_state()

    response = post(alice_client, event, {"best_available": {"count": 7}})

    assert response.status_code == 409
    assert response.json() == {
        "error": "No 7 seats side by side are free; at most 6 are.",
        "code": "seats_unavailable",
        "together": 6,
    }
    assert db_state() == before


def test_over_the_customers_limit_is_409(alice_client, event, db_state):
    before = db_state()

    response = post(alice_client, event, {"best_available": {"count": 9}})

    assert (response.status_code, response.json()["code"]) == (409, "limit_exceeded")
    assert db_state() == before


def test_anonymous_and_draft_are_refused(client, alice_client, venue):
    draft = make_event(venue, on_sale=False)

    assert post(client, draft, {"best_available": {"count": 1}}).status_code == 401
    assert post(alice_client, draft, {"best_available": {"count": 1}}).status_code == 404


def test_a_retry_with_the_same_key_gets_the_first_answer_and_holds_nothing_more(
    alice_client, event, db_state
):
    first = post(alice_client, event, {"best_available": {"count": 2}}, key=KEY)
    after_first = db_state()

    again = post(alice_client, event, {"best_available": {"count": 2}}, key=KEY)

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert db_state() == after_first


def test_a_refusal_is_replayed_too_and_another_body_with_the_key_is_422(alice_client, event):
    refused = post(alice_client, event, {"best_available": {"count": 7}}, key=KEY)

    again = post(alice_client, event, {"best_available": {"count": 7}}, key=KEY)
    other = post(alice_client, event, {"best_available": {"count": 2}}, key=KEY)

    assert refused.status_code == again.status_code == 409
    assert again.content == refused.content and again["Idempotent-Replayed"] == "true"
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_mismatch")


def test_best_available_counts_as_a_seat_action(
    monkeypatch, settings, alice_client, event, db_state
):
    freeze_clock(monkeypatch)
    settings.RATE_LIMIT_SEAT_ACTIONS = [(2, 10)]
    assert post(alice_client, event, {"best_available": {"count": 1}}).status_code == 201
    assert post(alice_client, event, {"seats": [event.seats.last().pk]}).status_code == 201
    before = db_state()

    refused = post(alice_client, event, {"best_available": {"count": 1}})

    assert (refused.status_code, refused.json()["code"]) == (429, "rate_limited")
    assert db_state() == before


@pytest.fixture
def pairs_only(venue, bob):
    """Rows A-C of 6 with seats 3 and 4 booked: pairs and singles no more than 2 together."""
    event = make_event(venue, rows=3, seats_per_row=6, max_seats_per_customer=8)
    middle = event.seats.filter(number__in=[3, 4])
    services.book_seats(customer=bob, event_id=event.pk, seat_ids=[s.pk for s in middle])
    return event


def test_split_true_holds_groups_and_says_they_are_not_together(alice_client, pairs_only):
    response = post(alice_client, pairs_only, {"best_available": {"count": 4, "split": True}})

    assert response.status_code == 201
    body = response.json()
    # Row A's two pairs, either side of the booked middle: one row, nothing left alone.
    assert [places(group) for group in body["groups"]] == [
        [("A", 1), ("A", 2)],
        [("A", 5), ("A", 6)],
    ]
    assert body["together"] is False
    assert sorted(pk for group in body["groups"] for pk in group) == body["seats"]
    assert (
        sorted(Hold.objects.get(pk=body["hold"]).seats.values_list("pk", flat=True))
        == (body["seats"])
    )


def test_split_false_or_left_out_is_409_when_no_block_fits(alice_client, pairs_only, db_state):
    before = db_state()

    left_out = post(alice_client, pairs_only, {"best_available": {"count": 4}})
    no = post(alice_client, pairs_only, {"best_available": {"count": 4, "split": False}})

    assert left_out.status_code == no.status_code == 409
    assert (
        left_out.json()
        == no.json()
        == {
            "error": "No 4 seats side by side are free; at most 2 are.",
            "code": "seats_unavailable",
            "together": 2,
        }
    )
    assert db_state() == before


def test_split_true_answers_one_group_when_a_block_fits(alice_client, event):
    body = post(alice_client, event, {"best_available": {"count": 3, "split": True}}).json()

    assert places(body["seats"]) == [("A", 1), ("A", 2), ("A", 3)]
    assert (body["groups"], body["together"]) == ([body["seats"]], True)


def test_split_with_too_few_free_in_one_section_is_409(alice_client, pairs_only, db_state):
    before = db_state()

    response = post(
        alice_client, pairs_only, {"best_available": {"count": 8, "split": True, "max_price": 30}}
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": "No 8 seats are free in any one section at €30 or less, even apart; no seat is.",
        "code": "seats_unavailable",
        "together": 0,
    }
    assert db_state() == before
