"""Faults on the live path, with real uvicorn processes: Redis down or stuck (a Redis of the
test's own, stopped or frozen with SIGSTOP)."""

import asyncio
import time

import pytest

from seats.models import Booking, Seat
from tests.realtime.viewers import LiveViewer, converged, database_view, eventually, post_json
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
    assert Booking.objects.filter(event=event).count() == 4


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
