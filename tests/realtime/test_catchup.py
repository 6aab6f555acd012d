"""realtime.catchup: what a viewer at an older version is sent, within and beyond the
retained change log."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from realtime import catchup
from seats import services
from seats.models import Seat
from seats.sweeper import prune_seat_changes

MARKER = re.compile(r'^<div id="live-version" data-kind="(\w+)" data-version="(\d+)"')
SEAT = re.compile(r'id="seat-(\d+)"[^>]*?data-state="(\w+)"')


@pytest.fixture(autouse=True)
def no_shared_whole_maps(monkeypatch):
    monkeypatch.setattr(catchup, "_whole_maps", {})


def catch_up(event, since):
    version, frame = catchup.catch_up_frame(event_id=event.pk, since=since)
    kind, marked = MARKER.match(frame).groups()
    assert int(marked) == version
    return kind, version, {int(i): s for i, s in SEAT.findall(frame)}


@pytest.fixture
def month(alice, bob, event, seat_ids):
    """Version 1 is 40 days old, versions 2 and 3 are from today."""
    today = timezone.now()
    services.hold_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=today - timedelta(days=40)
    )
    services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[2:3], now=today)
    services.book_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[3:4], now=today)
    return seat_ids


def test_a_viewer_within_the_log_gets_the_changed_seats(event, month):
    assert catch_up(event, 0) == (
        "sync",
        3,
        # Alice's hold expired 40 days ago: its seats show free.
        {month[0]: "available", month[1]: "available", month[2]: "sold", month[3]: "sold"},
    )
    assert catch_up(event, 2) == ("sync", 3, {month[3]: "sold"})
    assert catchup.catch_up_frame(event_id=event.pk, since=3) == (3, None)


def test_a_viewer_from_before_the_pruned_changes_gets_a_whole_fresh_map(event, month):
    prune_seat_changes(keep_days=30)

    kind, version, seats = catch_up(event, 0)

    assert (kind, version) == ("reset", 3)
    assert seats == dict(Seat.objects.filter(event=event).values_list("pk", "state")) | {
        month[0]: "available",
        month[1]: "available",
    }
    # From the oldest change kept on, the log replays what was missed.
    assert catch_up(event, 1) == ("sync", 3, {month[2]: "sold", month[3]: "sold"})
    assert catch_up(event, 2) == ("sync", 3, {month[3]: "sold"})


def test_a_viewer_behind_a_log_pruned_to_nothing_gets_a_whole_fresh_map(event, month):
    prune_seat_changes(keep_days=30, now=timezone.now() + timedelta(days=60))

    kind, version, seats = catch_up(event, 2)

    assert (kind, version) == ("reset", 3)
    assert seats[month[3]] == "sold"
    assert len(seats) == Seat.objects.filter(event=event).count()


def test_seats_that_changed_many_times_count_once_towards_the_whole_map_limit(
    alice, event, seat_ids, monkeypatch
):
    monkeypatch.setattr(catchup, "CATCH_UP_MAX_SEATS", 2)
    for _ in range(3):  # the same two seats, six changes
        hold = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:2])
        services.release_hold(hold_id=hold.pk, actor=alice)

    assert catch_up(event, 0)[::2] == ("sync", {seat_ids[0]: "available", seat_ids[1]: "available"})


def test_a_catch_up_over_very_many_seats_sends_the_whole_map(staff, event, seat_ids, monkeypatch):
    monkeypatch.setattr(catchup, "CATCH_UP_MAX_SEATS", 3)
    services.block_seats(event_id=event.pk, seat_ids=seat_ids[:4], actor=staff)

    assert catch_up(event, 0)[0] == "reset"
