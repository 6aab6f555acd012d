"""Many customers at once on real PostgreSQL: no seat is ever held or sold twice.

Every thread opens its own connection before the barrier, so all requests start together;
each closes it in `finally` so the test database can be dropped afterwards.
"""

import threading
import time
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from seats import changes, locking, services
from seats.models import BookingSeat, Hold, Seat, SeatChange
from seats.services import rules
from tests.conftest import make_event
from tests.pg import another_session

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 50


@pytest.fixture(autouse=True)
def patient_locks(settings):
    # Fifty threads of one process queue for the same rows; on a loaded machine the last
    # can wait longer than the production timeout. A deadlock is still reported (by
    # PostgreSQL's deadlock detector, after 1 s), so "no Busy" below still means "no deadlock".
    settings.BOOKING_LOCK_TIMEOUT_MS = 30_000


@pytest.fixture(autouse=True)
def a_connection_per_customer():
    """Each customer thread holds its connection until the barrier: the process's pool must
    have one for every thread (in production, threads beyond the pool wait their turn)."""
    options = connection.settings_dict["OPTIONS"]
    default = options["pool"]
    connection.close_pool()
    options["pool"] = {**default, "max_size": CUSTOMERS + 5, "timeout": 60}
    yield
    connection.close_pool()
    options["pool"] = default


def connect_patiently():
    """Connects, waiting while the shared server has no connection slot free (other test
    runs on it come and go), so a full server does not pass for a failed booking."""
    for _ in range(150):
        try:
            connection.ensure_connection()
            return
        except OperationalError:
            time.sleep(0.2)
    connection.ensure_connection()


def run_together(calls):
    """Runs every call in its own thread, all released at once. Returns one outcome per
    call, in order: ("won", result) or (error class name, error)."""
    barrier = threading.Barrier(len(calls), timeout=60)
    outcomes = [None] * len(calls)

    def worker(index, call):
        try:
            connect_patiently()
            barrier.wait()
            outcomes[index] = ("won", call())
        except Exception as exc:  # every kind is counted; the tests assert the exact tally
            outcomes[index] = (type(exc).__name__, exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    return outcomes


def tally(outcomes):
    return Counter(kind for kind, _ in outcomes)


@pytest.fixture
def event(venue):
    # Room for every customer's request without tripping the per-customer limit.
    return make_event(venue, rows=2, seats_per_row=10, max_seats_per_customer=10)


@pytest.fixture
def five(event):
    return list(event.seats.order_by("pk").values_list("pk", flat=True)[:5])


def hold_call(customer, event, seat_ids):
    return lambda: services.hold_seats(customer=customer, event_id=event.pk, seat_ids=seat_ids)


def book_call(customer, event, seat_ids):
    return lambda: services.book_seats(customer=customer, event_id=event.pk, seat_ids=seat_ids)


def test_fifty_customers_holding_the_same_five_seats_one_wins(customers, event, five):
    outcomes = run_together([hold_call(c, event, five) for c in customers])

    assert tally(outcomes) == {"won": 1, "SeatsUnavailable": CUSTOMERS - 1}
    [hold] = [result for kind, result in outcomes if kind == "won"]
    assert list(Seat.objects.filter(pk__in=five).values_list("hold_id", flat=True)) == [hold.pk] * 5
    assert Hold.objects.count() == 1
    assert SeatChange.objects.count() == 5
    event.refresh_from_db()
    assert event.version == 1


def test_fifty_customers_each_holding_one_of_five_seats_one_wins_per_seat(customers, event, five):
    wanted = [[five[i % 5]] for i in range(CUSTOMERS)]

    outcomes = run_together(
        [hold_call(c, event, w) for c, w in zip(customers, wanted, strict=True)]
    )

    assert tally(outcomes) == {"won": 5, "SeatsUnavailable": CUSTOMERS - 5}
    won_seats = sorted(w[0] for w, (kind, _) in zip(wanted, outcomes, strict=True) if kind == "won")
    assert won_seats == five
    assert Seat.objects.filter(pk__in=five, state="held").count() == 5
    assert Hold.objects.count() == 5
    event.refresh_from_db()
    assert event.version == 5


@pytest.mark.parametrize("one_each", [False, True], ids=["all-five", "one-of-five"])
def test_fifty_customers_booking_directly_sell_each_seat_once(
    customers, event, five, one_each, booking_path
):
    wanted = [[five[i % 5]] if one_each else five for i in range(CUSTOMERS)]
    winners = 5 if one_each else 1

    outcomes = run_together(
        [book_call(c, event, w) for c, w in zip(customers, wanted, strict=True)]
    )

    assert tally(outcomes) == {"won": winners, "SeatsUnavailable": CUSTOMERS - winners}
    sold = BookingSeat.objects.filter(active=True).order_by("seat_id")
    assert list(sold.values_list("seat_id", flat=True)) == five
    assert Seat.objects.filter(pk__in=five, state="sold").count() == 5
    assert sum(kind == "won" for kind, _ in outcomes) == len(
        set(sold.values_list("booking_id", flat=True))
    )


# Every request contains seat 3, so exactly one can win; orders differ to invite deadlocks.
OVERLAPPING = [
    [1, 2, 3],
    [3, 2, 1],
    [2, 3, 4],
    [4, 3, 2],
    [3, 4, 5],
    [5, 4, 3],
    [1, 3, 5],
    [5, 3, 1],
    [3, 1],
    [3, 5],
]


@pytest.mark.parametrize("service", ["hold", "book"])
def test_overlapping_requests_in_opposite_orders_neither_deadlock_nor_double_sell(
    customers, event, five, service, booking_path
):
    call = hold_call if service == "hold" else book_call
    wanted = [[five[n - 1] for n in OVERLAPPING[i % len(OVERLAPPING)]] for i in range(CUSTOMERS)]

    outcomes = run_together([call(c, event, w) for c, w in zip(customers, wanted, strict=True)])

    # No Busy and no deadlock error: locks are always taken in primary-key order.
    assert tally(outcomes) == {"won": 1, "SeatsUnavailable": CUSTOMERS - 1}
    [winner] = [w for w, (kind, _) in zip(wanted, outcomes, strict=True) if kind == "won"]
    taken = Seat.objects.filter(pk__in=five).exclude(state="available")
    assert sorted(taken.values_list("pk", flat=True)) == sorted(winner)
    event.refresh_from_db()
    assert event.version == 1


@pytest.fixture
def without_row_locks(monkeypatch):
    """Services read customers and seats without FOR UPDATE, and nobody writes before every
    customer has read: the widest possible race, every time."""
    everyone_has_read = threading.Barrier(CUSTOMERS, timeout=60)

    def read_seats_without_locking(*, event_id, seat_ids):
        seats = list(Seat.objects.filter(event_id=event_id, pk__in=set(seat_ids)).order_by("pk"))
        everyone_has_read.wait()
        return seats

    monkeypatch.setattr(locking, "lock_customer", lambda customer_id: None)
    monkeypatch.setattr(locking, "lock_seats", read_seats_without_locking)


@contextmanager
def locked_by_another_session(seat_id: int):
    """Another PostgreSQL session (say, a stuck booking) holds the seat row locked."""
    with another_session() as other:
        other.execute("SELECT id FROM seats_seat WHERE id = %s FOR UPDATE", [seat_id])
        yield


def test_without_the_row_locks_the_same_seats_are_held_by_many(
    customers, event, five, without_row_locks
):
    """Control: proves the tests above would catch a missing lock."""
    outcomes = run_together([hold_call(c, event, five) for c in customers])

    assert tally(outcomes) == {"won": CUSTOMERS}
    assert Hold.objects.count() == CUSTOMERS
    assert SeatChange.objects.filter(from_state="available", to_state="held").count() == (
        5 * CUSTOMERS
    )


def test_without_the_row_locks_the_database_still_refuses_a_double_sale(
    customers, event, five, python_bookings, without_row_locks, caplog
):
    """The unique constraint on active booked seats is the last line of defence: the losers
    are told the seats are gone (409), and every refusal is logged as the bug it is."""
    outcomes = run_together([book_call(c, event, five) for c in customers])

    assert tally(outcomes) == {"won": 1, "SeatsUnavailable": CUSTOMERS - 1}
    assert BookingSeat.objects.filter(active=True).count() == 5
    refusals = [r for r in caplog.records if "refused a double sale" in r.getMessage()]
    assert len(refusals) == CUSTOMERS - 1


def test_a_seat_locked_too_long_answers_busy_and_changes_nothing(
    alice, client, event, five, settings, db_state
):
    settings.BOOKING_LOCK_TIMEOUT_MS = 200
    client.force_login(alice)
    before = db_state()
    with locked_by_another_session(five[0]):
        response = client.post(
            f"/api/events/{event.pk}/holds",
            data={"seats": five[:2]},
            content_type="application/json",
        )

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["code"] == "busy"
    assert db_state() == before
    # Once the lock is gone the same request goes through.
    response = client.post(
        f"/api/events/{event.pk}/holds",
        data={"seats": five[:2]},
        content_type="application/json",
    )
    assert response.status_code == 201


def test_taking_a_seat_from_an_expired_hold_while_the_sweeper_runs_does_not_deadlock(
    alice, bob, event, five, python_bookings, monkeypatch
):
    past = timezone.now() - timedelta(hours=1)
    expired = services.hold_seats(customer=alice, event_id=event.pk, seat_ids=five[:1], now=past)
    seats_written = threading.Event()
    sweeper_waiting = threading.Event()
    real_commit = changes.commit_transitions

    def commit_then_pause_the_booking(**kwargs):
        version = real_commit(**kwargs)
        if threading.current_thread().name == "booking":
            # Still holding the seat's lock: let the sweeper lock the old hold and queue up
            # behind the seat before the booking goes on to end that hold.
            seats_written.set()
            sweeper_waiting.wait(timeout=10)
        return version

    monkeypatch.setattr(changes, "commit_transitions", commit_then_pause_the_booking)
    outcomes = {}

    def run(name, call):
        try:
            connect_patiently()
            outcomes[name] = ("won", call())
        except Exception as exc:
            outcomes[name] = (type(exc).__name__, exc)
        finally:
            connection.close()

    booking = threading.Thread(
        name="booking",
        target=run,
        args=("booking", book_call(bob, event, five[:1])),
    )
    sweeper = threading.Thread(
        name="sweeper", target=run, args=("sweeper", lambda: services.expire_holds())
    )
    booking.start()
    assert seats_written.wait(timeout=10)
    sweeper.start()
    for _ in range(200):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                break
        threading.Event().wait(0.05)
    sweeper_waiting.set()
    booking.join(timeout=30)
    sweeper.join(timeout=30)

    assert {name: kind for name, (kind, _) in outcomes.items()} == {
        "booking": "won",
        "sweeper": "won",
    }
    assert Seat.objects.get(pk=five[0]).state == "sold"
    expired.refresh_from_db()
    assert expired.end_reason == Hold.EndReason.EXPIRED


def test_one_busy_event_does_not_keep_the_sweeper_from_the_others(alice, bob, venue, settings, now):
    settings.BOOKING_LOCK_TIMEOUT_MS = 200
    stuck, free = make_event(venue, name="Stuck"), make_event(venue, name="Free")
    for customer, event in ((alice, stuck), (bob, free)):
        seat = event.seats.order_by("pk").first()
        services.hold_seats(customer=customer, event_id=event.pk, seat_ids=[seat.pk], now=now)
    with locked_by_another_session(stuck.seats.order_by("pk").first().pk):
        released = services.expire_holds(now=now + timedelta(hours=1))

    assert released == 1
    assert free.seats.filter(state="held").count() == 0
    assert stuck.seats.filter(state="held").count() == 1
    assert services.expire_holds(now=now + timedelta(hours=1)) == 1  # next sweep gets it


@pytest.mark.parametrize("alices_clock", ["read-before-the-expiry", "running-behind"])
@pytest.mark.parametrize("takeover", ["hold", "book"])
def test_a_seat_added_while_the_emptied_hold_is_being_ended_is_never_left_under_an_ended_hold(
    alice, bob, event, five, client, python_bookings, monkeypatch, takeover, alices_clock
):
    """Alice's hold has expired and Bob takes its last seat. Inside Bob's transaction, after
    he wrote the seat and just before he locks Alice's emptied hold to end it, Alice's request
    adds another seat to her hold and commits: a request that read its clock before the expiry
    (when it started, or on a server whose clock runs behind) still finds the hold active.

    Bob must then see her new seat and keep the hold (it ends once he has it locked and finds
    it empty): a seat left 'held' under an ended hold is never swept, and the counters and the
    map would disagree about it forever.
    """
    start = timezone.now()
    hold = services.hold_seats(
        customer=alice,
        event_id=event.pk,
        seat_ids=five[:1],
        now=start - event.hold_duration - timedelta(seconds=5),
    )
    before_expiry = hold.expires_at - timedelta(seconds=1)
    if alices_clock == "read-before-the-expiry":
        # Her request started just before the expiry: its first reading of the clock is from
        # before it, the later ones are not.
        real_clock, first_read = rules.clock, []

        def alices_first_reading(now):
            if now is None and threading.current_thread().name == "alice" and not first_read:
                first_read.append(before_expiry)
                return before_expiry
            return real_clock(now)

        monkeypatch.setattr(rules, "clock", alices_first_reading)
        alices_now = None
    else:
        alices_now = before_expiry

    bob_at_the_hold_lock, alice_done = threading.Event(), threading.Event()

    def pause_before_locking_the_hold(execute, sql, params, many, context):
        # end_holds_left_empty locks holds with SKIP LOCKED; nothing else in Bob's call does.
        if "SKIP LOCKED" in sql and '"seats_hold"' in sql and not bob_at_the_hold_lock.is_set():
            bob_at_the_hold_lock.set()
            assert alice_done.wait(timeout=30)
        return execute(sql, params, many, context)

    def bobs_takeover():
        with connection.execute_wrapper(pause_before_locking_the_hold):
            if takeover == "hold":
                return services.hold_seats(customer=bob, event_id=event.pk, seat_ids=five[:1])
            return services.book_seats(customer=bob, event_id=event.pk, seat_ids=five[:1])

    def alices_request():
        return services.hold_seats(
            customer=alice, event_id=event.pk, seat_ids=five[1:2], now=alices_now
        )

    outcomes = {}

    def run(name, call, finished=None):
        try:
            connect_patiently()
            outcomes[name] = ("won", call())
        except Exception as exc:
            outcomes[name] = (type(exc).__name__, exc)
        finally:
            connection.close()
            if finished is not None:
                finished.set()

    bobs = threading.Thread(name="bob", target=run, args=("bob", bobs_takeover))
    bobs.start()
    assert bob_at_the_hold_lock.wait(timeout=30), "Bob never came to end Alice's hold"
    alices = threading.Thread(name="alice", target=run, args=("alice", alices_request, alice_done))
    alices.start()
    alices.join(timeout=30)
    bobs.join(timeout=30)
    assert not alices.is_alive() and not bobs.is_alive()

    assert outcomes["bob"][0] == "won"
    assert Seat.objects.get(pk=five[0]).state == ("held" if takeover == "hold" else "sold")
    # Alice's answer: a hold that is hers and valid by her clock, holding her new seat...
    kind, answer = outcomes["alice"]
    new_seat = Seat.objects.get(pk=five[1])
    if kind == "won":
        assert answer.expires_at > (alices_now or timezone.now())
        assert (new_seat.state, new_seat.hold_id) == ("held", answer.pk)
    else:  # ...or a clean refusal
        assert kind in {"SeatsUnavailable", "Conflict"}
        assert (new_seat.state, new_seat.hold_id) == ("available", None)
    # No seat is held under an ended hold, now or after the sweeper has been by.
    held_under_ended = Seat.objects.filter(state="held", hold__ended_at__isnull=False)
    assert not held_under_ended.exists()
    services.expire_holds()
    assert not held_under_ended.exists()
    assert not Seat.objects.filter(state="held", hold__expires_at__lte=timezone.now()).exists()
    # The sweeper and the API agree: what viewers are told is what is stored and counted.
    shown = client.get(f"/api/events/{event.pk}/seats").json()["seats"]
    stored = dict(Seat.objects.filter(event=event).values_list("pk", "state"))
    assert {seat["id"]: seat["state"] for seat in shown} == stored
    event.refresh_from_db()
    assert (event.seats_available, event.seats_held, event.seats_sold) == tuple(
        list(stored.values()).count(state) for state in ("available", "held", "sold")
    )
