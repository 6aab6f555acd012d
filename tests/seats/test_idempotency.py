"""Idempotency-Key on POST /api/events/<id>/holds and /bookings: a retry gets the first answer
and changes nothing; the answer is stored with the write, in the same transaction."""

import json
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from seats import idempotency, services
from seats.errors import Busy
from seats.models import Booking, Hold, IdempotencyKey, Seat
from tests.conftest import make_event
from tests.seats.test_ratelimits import freeze_clock

KEY = "3f0c6a9e-5d1b-4f7e-9a51-0b6c2d8e7f10"


def post(client, url, body, key=KEY, **headers):
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


@pytest.fixture
def alice_client(client_for, alice):
    return client_for(alice)


def url(event, path):
    return f"/api/events/{event.pk}/{path}"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["holds", "bookings"])
def test_a_repeat_gets_the_first_answer_and_changes_nothing(
    alice_client, event, seat_ids, db_state, path, booking_path
):
    first = post(alice_client, url(event, path), {"seats": seat_ids[:2]})
    after_first = db_state()

    again = post(alice_client, url(event, path), {"seats": seat_ids[:2]})

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Content-Type"] == "application/json"
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert db_state() == after_first


@pytest.mark.django_db
def test_without_a_key_a_repeat_is_a_new_request(alice_client, event, seat_ids):
    first = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]}, key=None)
    again = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]}, key=None)

    assert (first.status_code, again.status_code) == (201, 409)
    assert IdempotencyKey.objects.count() == 0


@pytest.mark.django_db
def test_a_retry_after_a_lost_answer_gets_the_booking(alice_client, event, seat_ids, booking_path):
    """The booking committed but its answer never reached the client (the process died, the
    connection dropped): the retry finds the booking instead of a 409 for its own seats."""
    post(alice_client, url(event, "bookings"), {"seats": seat_ids[:2]})  # answer lost

    retry = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:2]})

    [booking] = Booking.objects.all()
    assert retry.status_code == 201
    assert retry.json() == {"booking": booking.pk, "seats": seat_ids[:2], "total": "80.00"}
    assert retry["Idempotent-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
def test_the_answer_is_committed_with_the_booking_or_not_at_all(
    alice, event, seat_ids, monkeypatch, python_bookings
):
    """If the answer cannot be stored, the booking is not kept either: a committed booking
    always has its answer for a retry. (The Python path, whose steps can be interrupted; the
    database function's is the next test.)"""
    client = Client()
    client.force_login(alice)

    real_save = IdempotencyKey.save
    booked_before_failing = []

    def save(record, *args, **kwargs):
        if kwargs.get("update_fields"):  # storing the answer, after the booking
            booked_before_failing.append(Booking.objects.exists())
            raise RuntimeError("the process dies before the answer is stored")
        real_save(record, *args, **kwargs)

    monkeypatch.setattr(IdempotencyKey, "save", save)
    client.raise_request_exception = True
    with pytest.raises(RuntimeError):
        post(client, url(event, "bookings"), {"seats": seat_ids[:2]})

    assert booked_before_failing == [True]
    assert not Booking.objects.exists()
    assert not IdempotencyKey.objects.exists()
    assert set(Seat.objects.filter(pk__in=seat_ids[:2]).values_list("state", flat=True)) == {
        "available"
    }
    monkeypatch.undo()
    retry = post(client, url(event, "bookings"), {"seats": seat_ids[:2]})
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert IdempotencyKey.objects.get().status == 201


@contextmanager
def trigger(table, timing, body):
    """A PostgreSQL trigger on `table` running `body` (PL/pgSQL) for the test's duration."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE FUNCTION test_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$;"
            f"CREATE TRIGGER test_trigger {timing} ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION test_trigger();"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER test_trigger ON {table}; DROP FUNCTION test_trigger();")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_in_the_database_the_answer_is_stored_in_the_bookings_statement(
    alice, event, seat_ids, settings
):
    """On PostgreSQL the key, the booking and its answer are one statement: the answer
    stored with the booking, or (it could not be stored) nothing at all."""
    settings.BOOKINGS_IN_DATABASE = True
    client = Client()
    client.force_login(alice)
    refuse = "BEGIN IF NEW.status IS NOT NULL THEN RAISE 'no answer'; END IF; RETURN NEW; END"
    with trigger("seats_idempotencykey", "BEFORE UPDATE", refuse):
        client.raise_request_exception = False
        failed = post(client, url(event, "bookings"), {"seats": seat_ids[:2]})
    assert failed.status_code == 500
    assert not Booking.objects.exists()
    assert not IdempotencyKey.objects.exists()
    assert set(Seat.objects.filter(pk__in=seat_ids[:2]).values_list("state", flat=True)) == {
        "available"
    }

    booked = post(client, url(event, "bookings"), {"seats": seat_ids[:2]})
    again = post(client, url(event, "bookings"), {"seats": seat_ids[:2]})

    [booking] = Booking.objects.all()
    [stored] = IdempotencyKey.objects.all()
    assert booked.status_code == 201
    assert booked.json() == {"booking": booking.pk, "seats": seat_ids[:2], "total": "80.00"}
    assert (stored.status, stored.body) == (201, booked.content.decode())
    assert (again.status_code, again.content, again["Idempotent-Replayed"]) == (
        201,
        booked.content,
        "true",
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_in_the_database_a_keyed_booking_and_its_retry_are_one_statement_each(
    alice, event, seat_ids, settings
):
    """No read of the key before the booking's statement: it replays a stored answer
    itself (the session and user come from the cache)."""
    settings.BOOKINGS_IN_DATABASE = True
    client = Client()
    client.force_login(alice)
    post(client, url(event, "bookings"), {"seats": seat_ids[:1]}, key="warm-up")

    statements = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            answer = post(client, url(event, "bookings"), {"seats": seat_ids[1:2]})
        assert answer.status_code == 201
        # (The test's own transaction makes the service's atomic block a savepoint.)
        sql = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
        statements.append([statement.split("(")[0] for statement in sql])

    assert statements == [["SELECT seatline_book_seats_once"]] * 2


@pytest.mark.django_db
def test_the_announcement_goes_out_once_after_commit(
    alice_client, event, seat_ids, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as first:
        post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]})
    with django_capture_on_commit_callbacks() as again:
        post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]})

    assert len(first) == 1
    assert again == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "other_event"),
    [
        pytest.param("bookings", {"seats": "<other seats>"}, False, id="another-body"),
        pytest.param("holds", {"seats": "<same seats>"}, False, id="another-endpoint"),
        pytest.param("bookings", {"seats": "<same seats>"}, True, id="another-event"),
    ],
)
def test_the_same_key_for_another_request_is_422(
    alice_client, venue, event, seat_ids, db_state, path, body, other_event, booking_path
):
    post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]})
    target = make_event(venue, name="Other") if other_event else event
    seats = {"<other seats>": seat_ids[1:2], "<same seats>": seat_ids[:1]}[body["seats"]]
    before = db_state()

    response = post(alice_client, url(target, path), {"seats": seats})

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_mismatch"
    assert db_state() == before


@pytest.mark.django_db
def test_another_customers_same_key_is_independent(
    alice_client, bob, client_for, event, seat_ids, booking_path
):
    alices = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]})
    bobs = post(client_for(bob), url(event, "bookings"), {"seats": seat_ids[1:2]})

    assert alices.status_code == bobs.status_code == 201
    assert "Idempotent-Replayed" not in bobs
    assert alices.json()["booking"] != bobs.json()["booking"]
    assert Booking.objects.count() == 2


@pytest.mark.django_db
def test_a_refusal_is_answered_again_even_after_the_seats_came_free(
    alice_client, bob, event, seat_ids, db_state, booking_path
):
    bobs = services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[:1])
    refused = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]})
    services.release_hold(hold_id=bobs.pk, actor=bob)
    before = db_state()

    again = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]})

    assert refused.status_code == again.status_code == 409
    assert again.content == refused.content
    assert again["Idempotent-Replayed"] == "true"
    assert db_state() == before


@pytest.mark.django_db
def test_busy_is_not_stored_so_the_retry_tries_again(
    alice_client, event, seat_ids, monkeypatch, booking_path
):
    real = services.book_seats

    def busy(**kwargs):
        raise Busy("These seats are busy right now; please try again.")

    monkeypatch.setattr(services, "book_seats", busy)
    first = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]})
    monkeypatch.setattr(services, "book_seats", real)
    retry = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]})

    assert (first.status_code, first["Retry-After"]) == (503, "1")
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert Booking.objects.count() == 1


@pytest.mark.django_db
def test_a_rate_limited_request_is_not_stored(alice_client, event, seat_ids, settings, monkeypatch):
    clock = freeze_clock(monkeypatch)
    settings.RATE_LIMIT_BOOKINGS = [(1, 60)]
    post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]}, key="first")

    limited = post(alice_client, url(event, "bookings"), {"seats": seat_ids[1:2]}, key="second")
    clock.advance(60)
    retry = post(alice_client, url(event, "bookings"), {"seats": seat_ids[1:2]}, key="second")

    assert limited.status_code == 429
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert Booking.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "rate_setting"),
    [("holds", "RATE_LIMIT_SEAT_ACTIONS"), ("bookings", "RATE_LIMIT_BOOKINGS")],
)
def test_a_retry_of_an_answered_key_is_replayed_and_never_rate_limited(
    alice_client, event, seat_ids, settings, monkeypatch, path, rate_setting, booking_path
):
    """A client retrying after a lost answer gets its answer, not a 429 for the retry, and
    retries do not use up the allowance of the requests that really run."""
    freeze_clock(monkeypatch)
    setattr(settings, rate_setting, [(2, 60)])
    first = post(alice_client, url(event, path), {"seats": seat_ids[:1]}, key="k1")

    retries = [post(alice_client, url(event, path), {"seats": seat_ids[:1]}, key="k1")]
    retries += [post(alice_client, url(event, path), {"seats": seat_ids[:1]}, key="k1")]
    mismatch = post(alice_client, url(event, path), {"seats": seat_ids[2:3]}, key="k1")
    second = post(alice_client, url(event, path), {"seats": seat_ids[1:2]}, key="k2")
    third = post(alice_client, url(event, path), {"seats": seat_ids[2:3]}, key="k3")

    assert first.status_code == 201
    assert [(r.status_code, r.content, r.get("Idempotent-Replayed")) for r in retries] == [
        (201, first.content, "true")
    ] * 2
    assert (mismatch.status_code, mismatch.json()["code"]) == (422, "idempotency_mismatch")
    assert second.status_code == 201  # the second request that ran: within 2 a minute
    assert (third.status_code, third.json()["code"]) == (429, "rate_limited")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "key",
    ["", "two words", "tab\tkey", "caf\u00e9", "x" * 256],
    ids=["empty", "space", "control", "non-ascii", "too-long"],
)
def test_a_malformed_key_is_400_and_changes_nothing(alice_client, event, seat_ids, db_state, key):
    before = db_state()

    response = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]}, key=key)

    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert "Idempotency-Key" in response.json()["error"]
    assert db_state() == before
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_a_key_of_255_visible_characters_is_fine(alice_client, event, seat_ids):
    key = "".join(chr(c) for c in range(0x21, 0x7F)) * 3  # 282 characters
    response = post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]}, key=key[:255])

    assert response.status_code == 201


# --- expiry ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_expired_key_is_as_good_as_new(alice_client, event, seat_ids, settings, booking_path):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 1
    post(alice_client, url(event, "bookings"), {"seats": seat_ids[:1]})
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=1, seconds=1))

    other = post(alice_client, url(event, "bookings"), {"seats": seat_ids[1:2]})

    assert other.status_code == 201
    assert "Idempotent-Replayed" not in other
    assert Booking.objects.count() == 2
    assert IdempotencyKey.objects.get().status == 201


@pytest.mark.django_db
def test_prune_deletes_only_expired_keys(alice, bob, now, settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 24
    for customer, age in [(alice, 25), (alice, 24), (bob, 23), (bob, 0)]:
        IdempotencyKey.objects.create(
            customer=customer,
            key=f"k{age}",
            fingerprint="f",
            status=201,
            body="{}",
            created_at=now - timedelta(hours=age),
        )

    assert idempotency.prune_idempotency_keys(now=now) == 2
    assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == ["k0", "k23"]
    assert idempotency.prune_idempotency_keys(now=now) == 0


# --- concurrent duplicates on PostgreSQL ----------------------------------------------


@pytest.fixture
def own_pool():
    """A pool of this test's own: the threads' connections do not outlive it."""
    connection.close_pool()
    yield
    connection.close_pool()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["holds", "bookings"])
def test_concurrent_duplicates_write_once_and_get_the_same_answer(
    own_pool, alice, event, seat_ids, settings, path, booking_path
):
    """Five copies of one request at once (a client retrying while the first is still in
    flight): the first writes, the others wait for its commit and answer what it did."""
    settings.BOOKING_LOCK_TIMEOUT_MS = 30_000
    copies = 5
    clients = []
    for _ in range(copies):
        client = Client()
        client.force_login(alice)
        clients.append(client)
    barrier = threading.Barrier(copies, timeout=60)
    answers: list = [None] * copies

    def send(index):
        try:
            connection.ensure_connection()
            barrier.wait()
            answers[index] = post(clients[index], url(event, path), {"seats": seat_ids[:2]})
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads)
    assert [a.status_code for a in answers] == [201] * copies
    assert len({a.content for a in answers}) == 1
    assert sum("Idempotent-Replayed" in a for a in answers) == copies - 1
    assert (Booking if path == "bookings" else Hold).objects.count() == 1
    assert IdempotencyKey.objects.count() == 1
    event.refresh_from_db()
    assert event.version == 1  # one change, not five


def send_a_copy_while_the_first_runs(alice, event, seat_ids, first_is_inside, first_may_end):
    """Sends a booking in a thread; once `first_is_inside()` says it is under way, sends a
    copy with the same key, then `first_may_end()`, waits for the first, and sends the
    copy's retry. Returns the answers (first, copy, retry)."""
    first_client, copy_client = Client(), Client()
    first_client.force_login(alice)
    copy_client.force_login(alice)
    answers = []

    def send_first():
        try:
            answers.append(post(first_client, url(event, "bookings"), {"seats": seat_ids[:2]}))
        finally:
            connection.close()

    first = threading.Thread(target=send_first)
    first.start()
    try:
        deadline = time.monotonic() + 30
        while not first_is_inside():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        copy = post(copy_client, url(event, "bookings"), {"seats": seat_ids[:2]})
    finally:
        first_may_end()
        first.join(timeout=30)
    retry = post(copy_client, url(event, "bookings"), {"seats": seat_ids[:2]})
    [first_answer] = answers
    return first_answer, copy, retry


def assert_the_copy_was_busy_and_its_retry_replayed(first, copy, retry):
    assert (copy.status_code, copy["Retry-After"], copy.json()["code"]) == (503, "1", "busy")
    assert first.status_code == 201
    assert (retry.status_code, retry.content) == (201, first.content)
    assert retry["Idempotent-Replayed"] == "true"
    assert Booking.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_copy_waits_for_the_first_only_up_to_the_lock_timeout_then_is_busy(
    own_pool, alice, event, seat_ids, settings, monkeypatch, python_bookings
):
    """A copy sent while the first request is still running waits for it at most
    BOOKING_LOCK_TIMEOUT_MS, then answers 503 busy; its retry gets the first answer. (The
    Python path, held up between its steps; the database function's is the next test.)"""
    settings.BOOKING_LOCK_TIMEOUT_MS = 200
    real_book_seats = services.book_seats
    inside, finish = threading.Event(), threading.Event()

    def slow_book_seats(**kwargs):
        inside.set()
        assert finish.wait(timeout=30)
        return real_book_seats(**kwargs)

    monkeypatch.setattr(services, "book_seats", slow_book_seats)
    answers = send_a_copy_while_the_first_runs(alice, event, seat_ids, inside.is_set, finish.set)

    assert_the_copy_was_busy_and_its_retry_replayed(*answers)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_in_the_database_a_copy_waits_for_the_first_statement_only_up_to_the_lock_timeout(
    own_pool, alice, event, seat_ids, settings
):
    """The first booking's statement, slowed down inside PostgreSQL after it claimed the key,
    holds the key row: the copy waits for it at most BOOKING_LOCK_TIMEOUT_MS and answers 503
    busy; its retry gets the first answer."""
    settings.BOOKINGS_IN_DATABASE = True
    settings.BOOKING_LOCK_TIMEOUT_MS = 200

    def first_is_sleeping():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
                " AND query LIKE '%%seatline_book_seats_once%%'"
            )
            return cursor.fetchone()[0] == 1

    with trigger("seats_booking", "BEFORE INSERT", "BEGIN PERFORM pg_sleep(2); RETURN NEW; END"):
        answers = send_a_copy_while_the_first_runs(
            alice, event, seat_ids, first_is_sleeping, lambda: None
        )

    assert_the_copy_was_busy_and_its_retry_replayed(*answers)
