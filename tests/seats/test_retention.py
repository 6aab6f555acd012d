"""Retention of the seat-change log: `prune_seat_changes` and the worker loop that runs it."""

import asyncio
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from seats import services, sweeper
from seats.models import IdempotencyKey, SeatChange
from tests.conftest import make_event


def logged(event):
    return list(
        SeatChange.objects.filter(event=event)
        .order_by("version", "seat_id")
        .values_list("version", "seat_id", "cause")
    )


@pytest.fixture
def history(alice, bob, event, seat_ids):
    """Changes 40, 35 and 10 days old, and one from today (versions 1 to 4)."""
    today = timezone.now()
    hold = services.hold_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:2], now=today - timedelta(days=40)
    )
    services.release_hold(hold_id=hold.pk, actor=alice, now=today - timedelta(days=35))
    services.book_seats(
        customer=bob, event_id=event.pk, seat_ids=seat_ids[2:3], now=today - timedelta(days=10)
    )
    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[3:4], now=today)
    return seat_ids


def test_pruning_deletes_only_the_changes_older_than_the_window(event, history):
    out = StringIO()

    call_command("prune_seat_changes", "--keep-days", "30", stdout=out)

    assert out.getvalue().strip() == "Deleted 4 seat changes older than 30 days."
    assert logged(event) == [(3, history[2], "book"), (4, history[3], "hold")]
    call_command("prune_seat_changes", "--keep-days", "30", stdout=out)
    assert out.getvalue().strip().splitlines()[-1] == "Deleted 0 seat changes older than 30 days."
    assert len(logged(event)) == 2


def test_the_window_defaults_to_the_setting(settings, event, history):
    settings.SEAT_CHANGE_RETENTION_DAYS = 5
    out = StringIO()

    call_command("prune_seat_changes", stdout=out)

    assert out.getvalue().strip() == "Deleted 5 seat changes older than 5 days."
    assert logged(event) == [(4, history[3], "hold")]


def test_a_window_under_a_day_is_refused(event, history):
    with pytest.raises(Exception, match="--keep-days must be at least 1"):
        call_command("prune_seat_changes", "--keep-days", "0")
    assert len(logged(event)) == 6


def test_pruning_deletes_in_small_batches_event_by_event(alice, venue, history, event):
    other = make_event(venue, name="Other")
    old = timezone.now() - timedelta(days=60)
    services.hold_seats(
        customer=alice,
        event_id=other.pk,
        seat_ids=list(other.seats.values_list("pk", flat=True)[:3]),
        now=old,
    )

    with CaptureQueriesContext(connection) as queries:
        deleted = sweeper.prune_seat_changes(keep_days=30, batch_size=2)

    assert deleted == 4 + 3
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 4  # 2 + 2 of one event, 2 + 1 of the other
    assert logged(other) == []
    assert [v for v, _, _ in logged(event)] == [3, 4]


def test_each_events_log_is_pruned_as_a_prefix_by_version(alice, bob, staff, event, seat_ids):
    """A change committed after another can carry an earlier time (its clock was read before
    it waited for the event row). Pruning takes every version up to the newest old one, so the
    log left still replays every version after its oldest."""
    today = timezone.now()
    services.hold_seats(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:1], now=today - timedelta(days=40)
    )
    services.hold_seats(
        customer=bob, event_id=event.pk, seat_ids=seat_ids[1:2], now=today - timedelta(days=2)
    )
    services.block_seats(
        event_id=event.pk, seat_ids=seat_ids[2:3], actor=staff, now=today - timedelta(days=31)
    )
    services.book_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[3:4], now=today)

    assert sweeper.prune_seat_changes(keep_days=30) == 3

    assert logged(event) == [(4, seat_ids[3], "book")]  # the 2-day-old version 2 went too


def test_a_prune_asked_to_stop_leaves_the_rest_for_next_time(event, history):
    batches = []

    def stop_after_one_batch():
        batches.append(len(batches))
        return len(batches) > 1

    assert sweeper.prune_seat_changes(keep_days=30, batch_size=3, should_stop=stop_after_one_batch)
    assert len(logged(event)) == 3
    assert sweeper.prune_seat_changes(keep_days=30) == 1


# --- the worker loop ------------------------------------------------------------------------


class FakeWorker:
    """Stands in for the loop's database work: each sweep moves a fixed clock on by `step`
    seconds, and the loop stops after `sweeps` of them. Records when it was told to prune."""

    def __init__(self, *, sweeps: int, step: float) -> None:
        self.time = 0.0
        self.step = step
        self.sweeps_left = sweeps
        self.sweeps = 0
        self.prunes_at: list[float] = []
        self.stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def clock(self) -> float:
        return self.time

    def sweep(self) -> int:
        self.sweeps += 1
        self.time += self.step
        self.sweeps_left -= 1
        if self.sweeps_left == 0:
            self.loop.call_soon_threadsafe(self.stop.set)
        return 0

    async def prune(self, should_stop) -> None:
        # Runs on the loop before the next sweep starts: the time is the one the loop read.
        self.prunes_at.append(self.time)

    def run(self, monkeypatch, *, prune_once=None, **loop_options) -> None:
        """Runs the loop; with `prune_once`, its prunes call that instead of the database."""
        monkeypatch.setattr(sweeper, "_sweep_once", self.sweep)
        if prune_once is None:
            monkeypatch.setattr(sweeper, "_prune_logged", self.prune)
        else:
            monkeypatch.setattr(sweeper, "_prune_once", prune_once)

        async def main() -> None:
            self.stop = asyncio.Event()
            self.loop = asyncio.get_running_loop()
            await sweeper.sweep_forever(stop=self.stop, clock=self.clock, **loop_options)

        asyncio.run(asyncio.wait_for(main(), timeout=30))


def test_the_sweeper_loop_prunes_when_it_starts_and_then_at_most_once_an_hour(monkeypatch):
    worker = FakeWorker(sweeps=10, step=1000)  # the clock moves 1,000 s per sweep

    worker.run(monkeypatch, interval=0.001, prune_every=3600)

    assert worker.sweeps == 10
    assert worker.prunes_at == [1000, 5000, 9000]


def test_a_long_prune_does_not_hold_up_the_sweeps_and_stops_with_the_loop(monkeypatch):
    worker = FakeWorker(sweeps=5, step=1)
    sweeps_seen_by_the_prune = []

    def slow_prune(should_stop) -> int:
        while not should_stop():
            threading.Event().wait(0.001)
        sweeps_seen_by_the_prune.append(worker.sweeps)
        return 0

    worker.run(monkeypatch, prune_once=slow_prune, interval=0.001)

    # One prune, started after the first sweep, ran through the other four and ended with
    # the loop, which waited for it.
    assert sweeps_seen_by_the_prune == [5]


def pruned_in_own_connection(event) -> bool:
    try:
        return len(logged(event)) == 2 and IdempotencyKey.objects.count() == 1
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_worker_loop_deletes_old_changes_and_expired_idempotency_keys(alice, event, history):
    for key, age in [("old", timedelta(days=2)), ("new", timedelta(0))]:
        IdempotencyKey.objects.create(
            customer=alice, key=key, fingerprint="f", created_at=timezone.now() - age
        )

    async def run_until_pruned() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(sweeper.sweep_forever(interval=0.05, stop=stop))
        for _ in range(600):
            if await asyncio.to_thread(pruned_in_own_connection, event):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await loop

    asyncio.run(asyncio.wait_for(run_until_pruned(), timeout=60))

    assert logged(event) == [(3, history[2], "book"), (4, history[3], "hold")]
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
