"""Real uvicorn processes sharing PostgreSQL and Redis, driven through real sockets."""

import asyncio
import os

import pytest
import websockets

from seats.models import Seat
from tests.realtime.viewers import MARKER, Viewer, post_json
from tests.servers import Server, session_headers

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def servers(tmp_path):
    env = {"REDIS_URL": os.environ.get("REDIS_URL", "")}
    started = [Server(tmp_path, "a", **env).start(), Server(tmp_path, "b", **env).start()]
    yield started
    for server in started:
        server.stop()


def test_booking_on_one_process_reaches_viewers_on_both(servers, event, seat_ids, alice):
    a, b = servers
    headers = session_headers(alice)

    async def scenario():
        viewers = [
            await Viewer(b, event.pk, event.version).connect(),
            await Viewer(a, event.pk, event.version).connect(),
        ]
        status, body = await asyncio.to_thread(
            post_json, a, f"/api/events/{event.pk}/bookings", {"seats": seat_ids[:2]}, headers
        )
        assert status == 201, body
        for viewer in viewers:
            await viewer.wait_for(seat_ids[0], "sold")
            await viewer.wait_for(seat_ids[1], "sold")
            assert viewer.version == event.version + 1
            await viewer.ws.close()

    asyncio.run(scenario())


def test_changes_made_on_both_processes_reach_every_viewer_once_each_in_order(
    servers, event, seat_ids, alice
):
    """Each process hands its own changes to its own viewers at once and gets them back
    from Redis too, interleaved with the other's: every viewer sees every version once, in
    order."""
    a, b = servers
    headers = session_headers(alice)

    async def deltas(viewer: Viewer, until: int) -> list[int]:
        seen = []
        async with asyncio.timeout(10):
            while not seen or seen[-1] < until:
                kind, version = MARKER.match(await viewer.ws.recv()).groups()
                if kind == "delta":
                    seen.append(int(version))
        # Long enough for any copy through Redis to have come in behind the last one.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                while True:
                    kind, version = MARKER.match(await viewer.ws.recv()).groups()
                    if kind == "delta":
                        seen.append(int(version))
        return seen

    async def scenario():
        here = await Viewer(a, event.pk, event.version).connect()
        there = await Viewer(b, event.pk, event.version).connect()
        for server, seat_id in zip((a, b, a, b), seat_ids[:4], strict=True):
            status, body = await asyncio.to_thread(
                post_json, server, f"/api/events/{event.pk}/bookings", {"seats": [seat_id]}, headers
            )
            assert status == 201, body
        expected = [event.version + n for n in range(1, 5)]
        assert await deltas(here, expected[-1]) == expected
        assert await deltas(there, expected[-1]) == expected
        await here.ws.close()
        await there.ws.close()

    asyncio.run(scenario())


def test_hundreds_of_viewers_on_another_process_all_receive_every_change(
    servers, event, seat_ids, alice
):
    a, b = servers
    headers = session_headers(alice)

    async def scenario():
        viewers = []
        for _ in range(300):
            viewers.append(await Viewer(b, event.pk, event.version).connect())
        for seat_id in seat_ids[:3]:
            status, body = await asyncio.to_thread(
                post_json, a, f"/api/events/{event.pk}/holds", {"seats": [seat_id]}, headers
            )
            assert status == 201, body
        await asyncio.gather(*(v.wait_for(seat_ids[2], "held", timeout=20) for v in viewers))
        for viewer in viewers:
            assert viewer.version == event.version + 3
            assert all(viewer.states[s] == "held" for s in seat_ids[:3])
        await asyncio.gather(*(v.ws.close() for v in viewers))

    asyncio.run(scenario())
    assert "Traceback" not in servers[1].log.read_text()


def test_viewer_of_a_restarted_process_reconnects_and_catches_up(
    servers, event, seat_ids, alice, bob
):
    a, b = servers
    customers = ((session_headers(alice), seat_ids[:2]), (session_headers(bob), seat_ids[2:3]))

    async def scenario():
        viewer = await Viewer(b, event.pk, event.version).connect()
        await asyncio.to_thread(b.stop)  # a deploy: uvicorn closes sockets with 1012
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await viewer.ws.recv()
        assert closed.value.rcvd.code == 1012  # the htmx ws extension reconnects on it

        for headers, seats in customers:
            status, body = await asyncio.to_thread(
                post_json, a, f"/api/events/{event.pk}/bookings", {"seats": seats}, headers
            )
            assert status == 201, body

        await asyncio.to_thread(b.start)
        await viewer.connect()  # from the version it had reached
        await viewer.wait_for(seat_ids[2], "sold")
        await viewer.ws.close()
        return viewer

    viewer = asyncio.run(scenario())
    database = dict(Seat.objects.filter(event=event).values_list("pk", "state"))
    assert {s: viewer.states[s] for s in viewer.states} == {s: database[s] for s in viewer.states}
    assert viewer.states == {seat_ids[0]: "sold", seat_ids[1]: "sold", seat_ids[2]: "sold"}
