"""The in-memory channel layer (the embedded default) hears every announcement on the event
loop that serves its sockets, whichever thread makes it: a request's thread of the WSGI
pool, the loop's own thread, or a command's thread with no server at all."""

import asyncio
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from booking_site.asgi import application
from realtime import publish
from realtime.publish import event_group
from seats import services
from tests.servers import session_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return get_channel_layer()


async def http_post(path: str, body: bytes, headers: dict[str, str]) -> int:
    """POSTs through the ASGI application, as uvicorn would; returns the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": urlsplit(path).path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await application(scope, receive, send)
    return sent[0]["status"]


async def listen(layer, event_id: int) -> "asyncio.Task[dict]":
    """A viewer's subscription, already waiting for the next message."""
    channel = await layer.new_channel()
    await layer.group_add(event_group(event_id), channel)
    task = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0)
    return task


async def heard(received: "asyncio.Task[dict]") -> dict:
    # Not wait_for: it cancels the task and waits for that, which never ends for a task that
    # the wrong thread left un-woken.
    done, _ = await asyncio.wait({received}, timeout=2)
    assert done, "the viewer heard nothing"
    return received.result()


def run_on_debug_loop(scenario: Coroutine[Any, Any, dict]) -> dict:
    """Runs the scenario on an event loop in debug mode, which raises when it is touched from
    another thread: the in-memory layer's queues would otherwise go un-woken or corrupted,
    unnoticed. Not asyncio.run, which would wait for an un-woken task forever."""
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    try:
        return loop.run_until_complete(scenario)
    finally:
        loop.close()


def test_a_hold_taken_in_a_request_thread_reaches_the_server_loops_viewers(
    layer, event, seat_ids, alice
):
    headers = session_headers(alice)

    async def scenario() -> dict:
        received = await listen(layer, event.pk)
        body = f'{{"seats": [{seat_ids[0]}]}}'.encode()
        status = await http_post(f"/api/events/{event.pk}/holds", body, headers)
        assert status == 201
        return await heard(received)

    message = run_on_debug_loop(scenario())

    assert (message["event"], message["version"]) == (event.pk, event.version + 1)
    assert f'id="seat-{seat_ids[0]}"' in message["frame"]


def test_an_announcement_from_the_loops_own_thread_reaches_its_viewers(layer, event):
    async def scenario() -> dict:
        received = await listen(layer, event.pk)
        publish.announce_delta({"event": event.pk, "version": 7, "seats": [], "counts": {}})
        return await heard(received)

    assert run_on_debug_loop(scenario())["version"] == 7


def test_after_the_server_loop_has_stopped_a_command_still_announces(layer, event, seat_ids, alice):
    """A management command (`sweep_holds`, a shell) in a process whose server has stopped:
    the announcement runs on a loop of its own instead of going to the dead one."""
    stopped = asyncio.new_event_loop()
    publish.serve_from(stopped)
    stopped.close()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(event_group(event.pk), channel)

    services.hold_seats(customer=alice, event_id=event.pk, seat_ids=seat_ids[:1])

    async def receive() -> dict:
        return await asyncio.wait_for(layer.receive(channel), timeout=2)

    message = async_to_sync(receive)()
    assert message["version"] == event.version + 1
