"""What a committed change announces to live viewers, and that a rollback announces nothing."""

import json

import pytest

from events.models import Event
from seats import changes, services
from seats.errors import SeatsUnavailable
from seats.models import Seat

pytestmark = pytest.mark.django_db


def test_a_booking_announces_exactly_one_delta(
    booking_path, alice, event, seat_ids, now, event_listener, django_capture_on_commit_callbacks
):
    received = event_listener(event.pk)

    with django_capture_on_commit_callbacks(execute=True):
        services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)

    messages = received()
    assert len(messages) == 1
    message = messages[0]
    # Redis serializes what the in-memory layer passes by reference.
    assert json.loads(json.dumps(message)) == message
    assert message["type"] == "seat.delta"
    assert message["event"] == event.pk
    assert message["version"] == Event.objects.get(pk=event.pk).version == 1
    for seat_id in seat_ids[:2]:
        assert f'id="seat-{seat_id}" class="seat" data-state="sold"' in message["frame"]
    assert f'id="seat-{seat_ids[2]}"' not in message["frame"]


def test_a_refused_request_announces_nothing(
    booking_path,
    alice,
    bob,
    event,
    seat_ids,
    now,
    event_listener,
    django_capture_on_commit_callbacks,
):
    services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    received = event_listener(event.pk)

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(SeatsUnavailable),
    ):
        services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:2], now=now)

    assert callbacks == []
    assert received() == []


def test_a_service_that_fails_after_writing_rolls_back_and_announces_nothing(
    python_bookings,
    alice,
    event,
    seat_ids,
    now,
    event_listener,
    django_capture_on_commit_callbacks,
    db_state,
    monkeypatch,
):
    before = db_state()
    received = event_listener(event.pk)

    queue_announcement = changes.announce_on_commit

    def queue_then_fail(delta):
        queue_announcement(delta)
        raise RuntimeError("failure after the seats were written and the announcement queued")

    monkeypatch.setattr(changes, "announce_on_commit", queue_then_fail)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)

    assert callbacks == []
    assert received() == []
    assert db_state() == before
    assert set(Seat.objects.filter(pk__in=seat_ids[:2]).values_list("state", flat=True)) == {
        "available"
    }
