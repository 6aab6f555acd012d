"""Faults on the live path, with real uvicorn processes: Redis down or stuck (a Redis of the
test's own, stopped or frozen with SIGSTOP), and a web process killed in the middle of a rush.
"""

import asyncio
import http.client
import os
import signal
import threading
import time
import urllib.error
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, Sum

from seats.models import Booking, BookingSeat, Seat
from tests.conftest import make_event
from tests.realtime.viewers import (
    LiveViewer,
    converged,
    database_view,
    eventually,
    post,
    post_json,
)
from tests.servers import Server, session_headers

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TRY_AGAIN_LATER = 1013


def break_redis(redis, fault: str) -> None:
    if fault == "stopped":
        redis.stop()
    else:
        redis.freeze()


def mend_redis(redis, fault: str) -> None:
    if fault == "stopped":
        redis.start()  # on the same port
    else:
        redis.thaw()


def book(server: Server, event_id: int, seats: list[int], headers: dict) -> dict:
    status, body = post_json(server, f"/api/events/{event_id}/bookings", {"seats": seats}, headers)
    assert status == 201, body
    return body


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_bookings_do_not_wait_on_a_redis_that_is_down_or_stuck(
    tmp_path, throwaway_redis, fault, event, seat_ids, alice
):
    env = {"REDIS_URL": throwaway_redis.url}
    if fault == "frozen":
        # The rate limiter counts in the same Redis and waits out its own cache time-out
        # (1 s) on a stuck one; this test is about publishing.
        env["RATE_LIMIT_BOOKINGS"] = "off"
    server = Server(tmp_path, "web", **env).start()
    try:
        headers = session_headers(alice)
        book(server, event.pk, seat_ids[:1], headers)  # publishing works and is warmed up
        break_redis(throwaway_redis, fault)
        if fault == "frozen":
            # The first request then waits out the session copy's cache time-out (1 s)
            # once; the cache guard skips Redis for the next few seconds (booking_site.
            # sessions). This test is about publishing.
            book(server, event.pk, seat_ids[4:5], headers)

        for seat_id in seat_ids[1:4]:
            started = time.monotonic()
            book(server, event.pk, [seat_id], headers)
            took = time.monotonic() - started
            # A fault test with a generous bound: waiting on the publish took 2 s or more.
            assert took < 1.0, f"a booking took {took:.2f} s with Redis {fault}"
    finally:
        server.stop()

    assert (
        list(Seat.objects.filter(pk__in=seat_ids[:4]).values_list("state", flat=True))
        == ["sold"] * 4
    )
    booked = 5 if fault == "frozen" else 4
    assert Booking.objects.filter(event=event).count() == booked


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_viewers_are_told_while_redis_is_down_and_converge_once_it_is_back(
    tmp_path, throwaway_redis, fault, event, seat_ids, alice, bob
):
    # The default 15 s heartbeat: within these tests' time limits only deltas and the
    # catch-up on reconnect bring a viewer the changes.
    env = {"REDIS_URL": throwaway_redis.url}
    a, b = Server(tmp_path, "a", **env).start(), Server(tmp_path, "b", **env).start()
    customers = {"alice": session_headers(alice), "bob": session_headers(bob)}

    async def scenario() -> None:
        version, states = await asyncio.to_thread(database_view, event.pk)
        viewers = [
            await LiveViewer(servers, event.pk, version, states).start()
            for servers in ([a, b], [a, b], [b, a], [b, a])
        ]
        await asyncio.to_thread(book, a, event.pk, seat_ids[:1], customers["alice"])
        await converged(viewers, event.pk, timeout=5)

        break_redis(throwaway_redis, fault)
        await eventually(
            lambda: all(v.closes for v in viewers), timeout=8, what="every viewer told"
        )
        assert [v.closes for v in viewers] == [[TRY_AGAIN_LATER]] * 4
        # Bookings go on meanwhile, and reconnects are refused: no socket would get them.
        await asyncio.to_thread(book, b, event.pk, seat_ids[1:3], customers["bob"])
        await asyncio.sleep(4)
        assert [v.opened for v in viewers] == [1] * 4
        assert all(v.refused for v in viewers)

        mend_redis(throwaway_redis, fault)
        await converged(viewers, event.pk, timeout=10)
        # Live again, through Redis: the next change arrives as a delta.
        await asyncio.to_thread(book, b, event.pk, seat_ids[3:4], customers["alice"])
        await converged(viewers, event.pk, timeout=5)
        assert all(v.states[s] == "sold" for v in viewers for s in seat_ids[:4])
        for viewer in viewers:
            await viewer.stop()

    try:
        asyncio.run(scenario())
    finally:
        a.stop()
        b.stop()


@pytest.mark.redis
def test_a_web_process_killed_mid_rush_leaves_no_half_made_booking_and_viewers_converge(
    tmp_path, venue
):
    event = make_event(venue, rows=10, seats_per_row=10)
    seat_ids = list(event.seats.order_by("pk").values_list("pk", flat=True))
    User = get_user_model()
    customers = [User.objects.create(username=f"rusher{i:02d}") for i in range(12)]
    headers = [session_headers(customer) for customer in customers]
    env = {"REDIS_URL": os.environ.get("REDIS_URL", "")}
    a, b = Server(tmp_path, "a", **env).start(), Server(tmp_path, "b", **env).start()
    answered = 0
    answered_lock = threading.Lock()
    cut_off = 0  # requests whose connection b's death cut (not refused: in flight)

    def rush(index: int) -> list[tuple[str, int, bool]]:
        """One customer books four pairs of seats of its own, each request with its own
        Idempotency-Key, through b first (a for a few), retried with the same key through
        the survivor when the connection fails, as a client behind a proxy would."""
        nonlocal answered, cut_off
        route = [a, b] if index % 4 == 0 else [b, a]
        results = []
        for pair in range(4):
            seats = seat_ids[index * 8 + pair * 2 : index * 8 + pair * 2 + 2]
            key = str(uuid.uuid4())
            for attempt in range(40):
                server = route[0] if attempt == 0 or route[0].process.poll() is None else a
                try:
                    status, body, answer = post(
                        server,
                        f"/api/events/{event.pk}/bookings",
                        {"seats": seats},
                        {**headers[index], "Idempotency-Key": key},
                    )
                except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as exc:
                    refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
                    with answered_lock:
                        cut_off += not refused
                    time.sleep(0.1)
                    continue
                if status == 503:  # busy: try again
                    time.sleep(0.2)
                    continue
                assert status == 201, body
                assert body["seats"] == sorted(seats)
                replayed = answer.get("Idempotent-Replayed") == "true"
                results.append((key, body["booking"], replayed))
                break
            else:
                raise AssertionError(f"booking of {seats} never answered")
            with answered_lock:
                answered += 1
        return results

    async def scenario() -> list[LiveViewer]:
        version, states = await asyncio.to_thread(database_view, event.pk)
        viewers = [
            await LiveViewer(servers, event.pk, version, states).start()
            for servers in ([b, a], [b, a], [b, a], [a, b])
        ]
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=len(customers)) as pool:
            rushes = [loop.run_in_executor(pool, rush, i) for i in range(len(customers))]
            await eventually(lambda: answered >= 12, timeout=30, what="a quarter answered")
            b.stop(signal.SIGKILL)
            results = [r for rushed in await asyncio.gather(*rushes) for r in rushed]
        # b's viewers lost their socket without a close frame (1006) and reconnected to a.
        await eventually(
            lambda: all(v.server is a and v.opened == 2 for v in viewers[:3]),
            timeout=10,
            what="b's viewers reconnected to a",
        )
        assert [v.closes for v in viewers[:3]] == [[1006]] * 3
        assert viewers[3].closes == []
        await converged(viewers, event.pk, timeout=10)

        # A booking retried with its key is answered once: the same booking, replayed.
        key, booking_id, _ = results[0]  # the first pair of the first customer
        status, body, answer = await asyncio.to_thread(
            post,
            a,
            f"/api/events/{event.pk}/bookings",
            {"seats": seat_ids[:2]},
            {**headers[0], "Idempotency-Key": key},
        )
        assert (status, body["booking"], answer["Idempotent-Replayed"]) == (
            201,
            booking_id,
            "true",
        )
        for viewer in viewers:
            await viewer.stop()
        return results

    try:
        results = asyncio.run(scenario())
    finally:
        a.stop()
        b.stop()

    # Every booking request was answered once, with one booking: none lost, none doubled
    # (a retry of one that b committed before it died is answered with that booking).
    assert len(results) == len(customers) * 4
    assert len({booking for _, booking, _ in results}) == len(results)
    bookings = Booking.objects.filter(event=event)
    assert sorted(bookings.values_list("pk", flat=True)) == sorted(r[1] for r in results)
    # And none is half made: each has its two seats, sold, at the price it charged.
    assert list(
        bookings.annotate(
            active=Count("items", filter=Q(items__active=True)),
            sold=Count("items", filter=Q(items__seat__state="sold")),
        ).values_list("active", "sold")
    ) == [(2, 2)] * len(results)
    for booking in bookings.annotate(charged=Sum("items__price")):
        assert booking.total == booking.charged == Decimal("80.00")
    booked = set(BookingSeat.objects.filter(active=True).values_list("seat_id", flat=True))
    assert booked == set(seat_ids[: len(customers) * 8])
    assert set(Seat.objects.filter(state="sold").values_list("pk", flat=True)) == booked
    # The kill did land mid-rush (b served most customers, each always with a request out).
    assert cut_off > 0
    replays = sum(replayed for _, _, replayed in results)
    print(f"\n{cut_off} requests cut off by the kill; {replays} retries answered by replay")
