"""The embedded default (no REDIS_URL: the in-memory channel layer, one process) through a
real uvicorn server: a hold taken over HTTP, in one of the server's request threads,
reaches the viewers of that same process at once."""

import asyncio

import pytest
from django.test import Client

from tests.realtime.viewers import Viewer, post_json
from tests.servers import Server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path, "embedded", REDIS_URL="")
    yield started.start()
    started.stop()


def embedded_session_headers(user) -> dict:
    """Headers of a session the embedded server accepts: without Redis it signs users in
    with Django's own backend, whatever this test process's settings say."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    csrf = "a" * 32
    return {
        "Cookie": f"sessionid={client.cookies['sessionid'].value}; csrftoken={csrf}",
        "X-CSRFToken": csrf,
        "Content-Type": "application/json",
    }


def test_every_hold_over_http_reaches_live_viewers_at_once(server, event, seat_ids, alice):
    headers = embedded_session_headers(alice)

    async def scenario() -> None:
        viewers = [await Viewer(server, event.pk, event.version).connect() for _ in range(3)]
        for seat_id in seat_ids[:4]:
            status, body = await asyncio.to_thread(
                post_json, server, f"/api/events/{event.pk}/holds", {"seats": [seat_id]}, headers
            )
            assert status == 201, body
            for viewer in viewers:
                await viewer.wait_for(seat_id, "held", timeout=2)
        for viewer in viewers:
            assert viewer.version == event.version + 4
            await viewer.ws.close()

    asyncio.run(scenario())
    assert "Traceback" not in server.log.read_text()
