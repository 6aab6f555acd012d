"""seats.services.holds: holding, releasing, expiring."""

from datetime import timedelta

import pytest

from seats import services
from seats.errors import (
    Conflict,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    SeatsUnavailable,
    UnknownSeats,
)
from seats.models import Hold, Seat
from tests.conftest import make_event
from tests.seats.helpers import changes_at, states, version

pytestmark = pytest.mark.django_db


def test_hold_takes_the_seats_until_the_hold_duration_ends(alice, event, seat_ids, now):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)

    assert hold.customer == alice
    assert hold.expires_at == now + event.hold_duration
    assert states(seat_ids[:3]) == ["held", "held", "available"]
    assert sorted(hold.seats.values_list("pk", flat=True)) == seat_ids[:2]


def test_holding_more_seats_adds_them_to_the_same_hold_without_extending_it(
    alice, event, seat_ids, now
):
    first = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    later = now + timedelta(minutes=5)
    second = services.hold_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[1:2], now=later
    )

    assert second.pk == first.pk
    assert second.expires_at == now + event.hold_duration
    assert sorted(second.seats.values_list("pk", flat=True)) == seat_ids[:2]


def test_holding_a_seat_you_already_hold_changes_nothing(alice, event, seat_ids, now, db_state):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    before = db_state()

    again = services.hold_seats(
        customer=alice,
        event_id=event.pk,
        seat_ids=[seat_ids[1], seat_ids[0]],
        now=now + timedelta(minutes=1),
    )

    assert again.pk == hold.pk
    assert db_state() == before


def test_hold_limit_counts_held_and_booked_seats(alice, venue, now, db_state):
    event = make_event(venue, max_seats_per_customer=3)
    ids = list(event.seats.order_by("pk").values_list("pk", flat=True))
    services.book_seats(customer=alice, event_id=event.pk, seat_ids=ids[:2], now=now)
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=ids[2:3], now=now)
    before = db_state()

    with pytest.raises(LimitExceeded) as exc:
        services.hold_seats(customer=alice, event_id=event.pk, seat_ids=ids[3:4], now=now)
    with pytest.raises(LimitExceeded):
        services.book_seats(customer=alice, event_id=event.pk, seat_ids=ids[3:4], now=now)

    assert exc.value.status == 409
    assert exc.value.seats == ids[3:4]
    assert db_state() == before


def test_a_booking_cancelled_no_longer_counts_towards_the_limit(alice, venue, now):
    event = make_event(venue, max_seats_per_customer=2)
    ids = list(event.seats.order_by("pk").values_list("pk", flat=True))
    booking = services.book_seats(customer=alice, event_id=event.pk, seat_ids=ids[:2], now=now)
    services.cancel_booking(booking_id=booking.pk, actor=alice, now=now)

    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=ids[2:4], now=now)

    assert hold.seats.count() == 2


def test_an_expired_hold_is_no_hold_even_before_the_sweeper_runs(alice, bob, event, seat_ids, now):
    alices = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    just_before = alices.expires_at - timedelta(seconds=1)
    with pytest.raises(SeatsUnavailable) as exc:
        services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1], now=just_before)
    assert exc.value.seats == seat_ids[:1]

    bobs = services.hold_seats(
        customer=bob, event_id=event.pk, seat_ids=seat_ids[:1], now=alices.expires_at
    )

    assert Seat.objects.get(pk=seat_ids[0]).hold == bobs
    # Alice's other seat is still marked with her (expired) hold until the sweeper runs.
    assert Seat.objects.get(pk=seat_ids[1]).hold == alices
    # Viewers already saw the seat as free, so the change they are told about starts there.
    assert changes_at(event, version(event)) == [(seat_ids[0], "available", "held", bob.pk, "hold")]


def test_taking_over_the_last_seat_of_an_expired_hold_ends_that_hold(
    alice, bob, event, seat_ids, now
):
    alices = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)

    services.book_seats(
        customer=bob, event_id=event.pk, seat_ids=seat_ids[:1], now=alices.expires_at
    )

    alices.refresh_from_db()
    assert alices.ended_at == alices.expires_at
    assert alices.end_reason == Hold.EndReason.EXPIRED
    assert states(seat_ids[:1]) == ["sold"]


def test_a_customer_can_hold_again_after_their_own_hold_expired(alice, event, seat_ids, now):
    old = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)

    new = services.hold_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=old.expires_at
    )

    assert new.pk != old.pk
    assert new.expires_at == old.expires_at + event.hold_duration
    assert sorted(new.seats.values_list("pk", flat=True)) == seat_ids[:2]


def test_failed_requests_change_nothing_and_never_extend_the_hold(
    alice, bob, event, seat_ids, now, db_state
):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[5:6], now=now)
    before = db_state()
    later = now + timedelta(minutes=9)

    failing = [
        (SeatsUnavailable, {"seat_ids": [seat_ids[1], seat_ids[5]]}),
        (UnknownSeats, {"seat_ids": [seat_ids[1], 10**9]}),
        (InvalidRequest, {"seat_ids": [seat_ids[1], seat_ids[1]]}),
        (InvalidRequest, {"seat_ids": []}),
        (InvalidRequest, {"seat_ids": "1"}),
        (InvalidRequest, {"seat_ids": [True]}),
        # Beyond the largest primary key: the database driver could not even compare it.
        (InvalidRequest, {"seat_ids": [seat_ids[1], 2**63]}),
        (InvalidRequest, {"seat_ids": list(range(1, 102))}),
    ]
    for error, kwargs in failing:
        with pytest.raises(error):
            services.hold_seats(customer=alice, event_id=event.pk, now=later, **kwargs)
        with pytest.raises(error):
            services.book_seats(customer=alice, event_id=event.pk, now=later, **kwargs)
    with pytest.raises(NotFound):
        services.hold_seats(customer=alice, event_id=10**9, seat_ids=seat_ids[1:2], now=later)

    assert db_state() == before
    hold.refresh_from_db()
    assert hold.expires_at == now + event.hold_duration


def test_release_all_seats_ends_the_hold(alice, event, seat_ids, now):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:3], now=now)

    released = services.release_hold(hold_id=hold.pk, actor=alice, now=now)

    assert states(seat_ids[:3]) == ["available"] * 3
    assert released.ended_at == now
    assert released.end_reason == Hold.EndReason.RELEASED


def test_release_some_seats_keeps_the_rest_held(alice, event, seat_ids, now):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:3], now=now)

    released = services.release_hold(hold_id=hold.pk, actor=alice, seat_ids=[seat_ids[1]], now=now)

    assert states(seat_ids[:3]) == ["held", "available", "held"]
    assert released.ended_at is None
    assert sorted(released.seats.values_list("pk", flat=True)) == [seat_ids[0], seat_ids[2]]


def test_only_the_holder_or_staff_may_release_a_hold(
    alice, bob, staff, event, seat_ids, now, db_state
):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    before = db_state()

    with pytest.raises(NotFound):
        services.release_hold(hold_id=hold.pk, actor=bob, now=now)
    assert db_state() == before

    services.release_hold(hold_id=hold.pk, actor=staff, now=now)
    assert states(seat_ids[:1]) == ["available"]
    with pytest.raises(Conflict):
        services.release_hold(hold_id=hold.pk, actor=alice, now=now)


def test_releasing_seats_not_in_the_hold_is_refused(alice, event, seat_ids, now, db_state):
    hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now)
    before = db_state()

    with pytest.raises(UnknownSeats) as exc:
        services.release_hold(hold_id=hold.pk, actor=alice, seat_ids=seat_ids[1:3], now=now)

    assert exc.value.seats == [seat_ids[2]]
    assert db_state() == before


# --- bookings -------------------------------------------------------------------------


def test_expire_holds_releases_the_seats_and_ends_the_holds(alice, bob, event, seat_ids, now):
    expiring = services.hold_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=now
    )
    later = now + timedelta(minutes=5)
    lasting = services.hold_seats(
        customer=bob, event_id=event.pk, seat_ids=seat_ids[2:3], now=later
    )
    start = version(event)

    assert services.expire_holds(now=expiring.expires_at - timedelta(seconds=1)) == 0
    released = services.expire_holds(now=expiring.expires_at)

    assert released == 2
    assert states(seat_ids[:3]) == ["available", "available", "held"]
    expiring.refresh_from_db()
    lasting.refresh_from_db()
    assert (expiring.ended_at, expiring.end_reason) == (expiring.expires_at, "expired")
    assert lasting.ended_at is None
    assert version(event) == start + 1
    assert changes_at(event, start + 1) == [
        (seat_ids[0], "held", "available", None, "expire"),
        (seat_ids[1], "held", "available", None, "expire"),
    ]
    assert services.expire_holds(now=expiring.expires_at) == 0


def test_expire_holds_ends_one_version_per_event(alice, venue, event, seat_ids, now):
    other = make_event(venue, name="Matinee")
    other_ids = list(other.seats.order_by("pk").values_list("pk", flat=True))
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=now)
    services.hold_seats(customer=alice, event_id=other.pk, seat_ids=other_ids[:2], now=now)

    assert services.expire_holds(now=now + timedelta(hours=1)) == 3

    assert (version(event), version(other)) == (2, 2)
    assert states(other_ids[:2]) == ["available", "available"]


# --- versions and the change log ------------------------------------------------------
