"""Faults on the live path, with real uvicorn processes: Redis down or stuck (a Redis of the
test's own, stopped or frozen with SIGSTOP)."""

import time

import pytest

from seats.models import Booking, Seat
from tests.realtime.viewers import post_json
from tests.servers import Server, session_headers

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

def break_redis(redis, fault: str) -> None:
    if fault == "stopped":
        redis.stop()
    else:
        redis.freeze()


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
