"""The seat-map WebSocket, end to end through the ASGI application and the channel layer."""

import asyncio
import json
import re

import pytest
import redis.asyncio
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client

from booking_site.asgi import application
from events.models import Event
from realtime import feed
from realtime.feed import registry
from realtime.publish import event_group
from seats import services
from seats.errors import SeatsUnavailable
from seats.models import Seat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

MARKER = re.compile(r'^<div id="live-version" data-kind="(\w+)" data-version="(\d+)"')
SEAT = re.compile(r'id="seat-(\d+)"[^>]*?data-state="(\w+)"')


@pytest.fixture(autouse=True)
def realtime_settings(settings):
    settings.REALTIME_FEED_LINGER = 0
    settings.REALTIME_HEARTBEAT_SECONDS = 60


def parse(frame: str) -> tuple[str, int, dict[int, str]]:
    kind, version = MARKER.match(frame).groups()
    return kind, int(version), {int(i): s for i, s in SEAT.findall(frame)}


async def open_viewer(event_id, version=None, origin=b"http://testserver"):
    path = f"/ws/events/{event_id}/" + ("" if version is None else f"?v={version}")
    viewer = WebsocketCommunicator(application, path, headers=[(b"origin", origin)])
    connected, _ = await viewer.connect()
    return viewer, connected


def db_states(event_id) -> dict[int, str]:
    return dict(Seat.objects.filter(event_id=event_id).values_list("pk", "state"))


def version_of(event) -> int:
    return Event.objects.values_list("version", flat=True).get(pk=event.pk)


async def test_committed_booking_reaches_viewer(event, seat_ids, alice):
    viewer, connected = await open_viewer(event.pk, event.version)
    assert connected
    assert await viewer.receive_nothing(0.2)  # up to date: no catch-up frame

    await sync_to_async(services.book_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:2]
    )

    kind, version, seats = parse(await viewer.receive_from(timeout=2))
    assert (kind, version) == ("delta", event.version + 1)
    assert seats == {seat_ids[0]: "sold", seat_ids[1]: "sold"}
    await viewer.disconnect()


async def test_failed_and_rolled_back_changes_are_not_announced(event, seat_ids, alice, bob):
    await sync_to_async(services.hold_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:1]
    )
    viewer, _ = await open_viewer(event.pk, await sync_to_async(version_of)(event))

    with pytest.raises(SeatsUnavailable):
        await sync_to_async(services.book_seats)(
            customer=bob, event_id=event.pk, seat_ids=seat_ids[:1]
        )

    def hold_then_roll_back():
        with transaction.atomic():
            services.hold_seats(customer=bob, event_id=event.pk, seat_ids=seat_ids[1:2])
            raise RuntimeError("payment provider down")

    with pytest.raises(RuntimeError):
        await sync_to_async(hold_then_roll_back)()

    assert await viewer.receive_nothing(0.5)
    await viewer.disconnect()


async def test_reconnect_from_old_version_gets_what_it_missed(event, seat_ids, alice, bob):
    old = event.version
    await sync_to_async(services.hold_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:2]
    )
    await sync_to_async(services.book_seats)(
        customer=bob, event_id=event.pk, seat_ids=seat_ids[5:6]
    )
    hold = await sync_to_async(services.hold_seats)(
        customer=bob, event_id=event.pk, seat_ids=seat_ids[7:8]
    )
    await sync_to_async(services.release_hold)(hold_id=hold.pk, actor=bob)

    viewer, _ = await open_viewer(event.pk, old)
    kind, version, seats = parse(await viewer.receive_from(timeout=2))

    assert kind == "sync"
    assert version == await sync_to_async(version_of)(event) == old + 4
    assert seats == {
        seat_ids[0]: "held",
        seat_ids[1]: "held",
        seat_ids[5]: "sold",
        seat_ids[7]: "available",
    }
    await viewer.disconnect()


async def test_viewer_far_behind_gets_a_whole_fresh_map(settings, event, seat_ids, alice):
    settings.REALTIME_CATCHUP_LIMIT = 1
    await sync_to_async(services.hold_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:1]
    )
    await sync_to_async(services.hold_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[1:2]
    )

    viewer, _ = await open_viewer(event.pk, 0)
    frame = await viewer.receive_from(timeout=2)
    kind, _, seats = parse(frame)

    assert kind == "reset" and 'id="seat-map"' in frame
    assert seats == await sync_to_async(db_states)(event.pk)
    await viewer.disconnect()


async def test_resync_request_is_answered_with_the_missed_changes(event, seat_ids, alice):
    viewer, _ = await open_viewer(event.pk, event.version)
    await sync_to_async(services.book_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:1]
    )
    await viewer.receive_from(timeout=2)  # the delta

    await viewer.send_to(text_data=json.dumps({"type": "resync", "version": event.version}))

    kind, version, seats = parse(await viewer.receive_from(timeout=2))
    assert (kind, version, seats) == ("sync", event.version + 1, {seat_ids[0]: "sold"})
    await viewer.disconnect()


async def test_deltas_published_out_of_order_reach_the_viewer_in_order(event):
    viewer, _ = await open_viewer(event.pk, event.version)
    layer = get_channel_layer()
    for version in (event.version + 1, event.version + 3, event.version + 2):
        frame = f'<div id="live-version" data-kind="delta" data-version="{version}"></div>'
        await layer.group_send(
            event_group(event.pk), {"type": "seat.delta", "version": version, "frame": frame}
        )

    received = [parse(await viewer.receive_from(timeout=2))[1] for _ in range(3)]
    assert received == [event.version + 1, event.version + 2, event.version + 3]
    await viewer.disconnect()


async def subscriptions_to(group: str) -> int:
    """How many subscriptions the channel layer holds for the group, whichever layer it is."""
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return len(layer.groups.get(group, {}))
    client = redis.asyncio.from_url(settings.REDIS_URL)
    try:
        ((_, count),) = await client.pubsub_numsub(f"{layer.prefix}__group__{group}")
        return count
    finally:
        await client.aclose()


async def test_one_subscription_per_process_whatever_the_number_of_viewers(event):
    viewers = [(await open_viewer(event.pk, event.version))[0] for _ in range(5)]

    assert await subscriptions_to(event_group(event.pk)) == 1
    assert len(registry().feeds[event.pk].subscribers) == 5
    for viewer in viewers:
        await viewer.disconnect()


async def test_heartbeat_carries_the_database_version(settings, event, seat_ids, alice):
    settings.REALTIME_HEARTBEAT_SECONDS = 0.2
    viewer, _ = await open_viewer(event.pk, event.version)
    await sync_to_async(services.hold_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:1]
    )

    frames = [parse(await viewer.receive_from(timeout=2)) for _ in range(2)]
    heartbeats = [f for f in frames if f[0] == "heartbeat"]
    if not heartbeats:
        heartbeats = [parse(await viewer.receive_from(timeout=2))]
    assert heartbeats[0][1] in (event.version, event.version + 1)
    assert (await sync_to_async(version_of)(event)) == event.version + 1
    await viewer.disconnect()


def stall_writes(consumer) -> asyncio.Event:
    """Makes the consumer's connection take no frames (a client that stopped reading: its
    send buffer is full) until the returned event is set."""
    drained = asyncio.Event()
    send = consumer.base_send

    async def send_when_drained(message):
        if message["type"] == "websocket.send":
            await drained.wait()
        await send(message)

    consumer.base_send = send_when_drained
    return drained


async def test_a_socket_that_cannot_keep_up_is_closed_to_reconnect_and_catch_up(settings, event):
    settings.REALTIME_SOCKET_QUEUE = 3
    viewer, _ = await open_viewer(event.pk, event.version)
    (consumer,) = registry().feeds[event.pk].subscribers
    stall_writes(consumer)

    for version in range(1, 10):  # none of them can be written
        consumer.deliver(kind="delta", version=version, frame="<div></div>")

    messages = []
    while True:
        output = await viewer.receive_output(timeout=2)
        messages.append(output)
        if output["type"] == "websocket.close":
            break
    assert output["code"] == 1013
    assert sum(m["type"] == "websocket.send" for m in messages) <= 3
    assert event.pk not in registry().feeds or not registry().feeds[event.pk].subscribers


async def test_a_stalled_socket_does_not_hold_up_the_others_and_catches_up_in_order(
    event, seat_ids, alice
):
    stalled, _ = await open_viewer(event.pk, event.version)
    (slow,) = registry().feeds[event.pk].subscribers
    drained = stall_writes(slow)
    others = [(await open_viewer(event.pk, event.version))[0] for _ in range(3)]

    for seat_id in seat_ids[:3]:
        await sync_to_async(services.book_seats)(
            customer=alice, event_id=event.pk, seat_ids=[seat_id]
        )
    for other in others:
        versions = [parse(await other.receive_from(timeout=2))[1] for _ in range(3)]
        assert versions == [event.version + 1, event.version + 2, event.version + 3]
    assert await stalled.receive_nothing(0.1)

    drained.set()  # the slow client reads again: it gets every frame, in order
    versions = [parse(await stalled.receive_from(timeout=2))[1] for _ in range(3)]
    assert versions == [event.version + 1, event.version + 2, event.version + 3]
    for viewer in (stalled, *others):
        await viewer.disconnect()


async def test_a_viewer_joining_a_live_feed_gets_the_recent_deltas_it_missed(
    event, seat_ids, alice
):
    watching, _ = await open_viewer(event.pk, event.version)  # keeps the feed alive
    for seat_id in seat_ids[:2]:
        await sync_to_async(services.book_seats)(
            customer=alice, event_id=event.pk, seat_ids=[seat_id]
        )
    for _ in range(2):
        await watching.receive_from(timeout=2)

    late, _ = await open_viewer(event.pk, event.version)
    frames = [parse(await late.receive_from(timeout=2)) for _ in range(2)]
    assert frames == [
        ("delta", event.version + 1, {seat_ids[0]: "sold"}),
        ("delta", event.version + 2, {seat_ids[1]: "sold"}),
    ]
    current, _ = await open_viewer(event.pk, event.version + 2)
    assert await current.receive_nothing(0.2)  # missed nothing
    for viewer in (watching, late, current):
        await viewer.disconnect()


async def test_foreign_origin_is_refused(event):
    _, connected = await open_viewer(event.pk, event.version, origin=b"http://evil.example")
    assert not connected


async def test_draft_event_is_not_streamed_to_the_public(event):
    await sync_to_async(services.set_sale_state)(event_id=event.pk, sale_state="draft")
    _, connected = await open_viewer(event.pk, 0)
    assert not connected


async def test_bad_version_parameter_gets_the_whole_map(event, seat_ids):
    viewer, connected = await open_viewer(event.pk, "not-a-number")
    assert connected
    kind, _, seats = parse(await viewer.receive_from(timeout=2))
    assert kind == "reset" and len(seats) == len(seat_ids)
    await viewer.disconnect()


async def test_closing_sales_shows_live_and_to_late_viewers(event):
    viewer, _ = await open_viewer(event.pk, event.version)
    assert await viewer.receive_nothing(0.2)  # its (empty) catch-up is done

    await sync_to_async(services.set_sale_state)(event_id=event.pk, sale_state="closed")

    frame = await viewer.receive_from(timeout=2)
    assert parse(frame)[:2] == ("delta", event.version + 1)
    assert 'id="sale-banner" data-sale-state="closed"' in frame and "Sales are closed" in frame
    late, _ = await open_viewer(event.pk, event.version)
    assert 'data-sale-state="closed"' in await late.receive_from(timeout=2)
    await viewer.disconnect()
    await late.disconnect()


async def test_the_session_identifies_the_user_on_the_socket(event, staff):
    """A staff member's session opens a draft event's socket; the same socket anonymous
    is refused (see test_draft_event_is_not_streamed_to_the_public)."""
    await sync_to_async(services.set_sale_state)(event_id=event.pk, sale_state="draft")
    client = Client()
    await sync_to_async(client.force_login)(staff)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    viewer = WebsocketCommunicator(
        application,
        f"/ws/events/{event.pk}/?v=0",
        headers=[(b"origin", b"http://testserver"), (b"cookie", cookie.encode())],
    )
    connected, _ = await viewer.connect()

    assert connected
    await viewer.disconnect()


async def test_resync_requests_coalesce_and_come_at_most_once_a_second(event, seat_ids, alice):
    viewer, _ = await open_viewer(event.pk, event.version)
    assert await viewer.receive_nothing(0.2)
    await sync_to_async(services.hold_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:1]
    )
    await viewer.receive_from(timeout=2)  # the delta

    for _ in range(20):
        await viewer.send_to(text_data=json.dumps({"type": "resync", "version": event.version}))

    assert parse(await viewer.receive_from(timeout=3))[0] == "sync"
    assert await viewer.receive_nothing(1.2)  # the twenty were answered as one
    await viewer.send_to(text_data=json.dumps({"type": "resync", "version": event.version}))
    assert parse(await viewer.receive_from(timeout=3))[0] == "sync"
    await viewer.disconnect()


async def test_a_flood_of_whole_map_requests_gets_one_answer_per_socket(event, seat_ids):
    viewers = [(await open_viewer(event.pk, event.version))[0] for _ in range(10)]
    for viewer in viewers:
        assert await viewer.receive_nothing(0.05)
        for _ in range(50):
            await viewer.send_to(text_data=json.dumps({"type": "resync"}))

    for viewer in viewers:
        kind, _, seats = parse(await viewer.receive_from(timeout=5))
        assert kind == "reset" and len(seats) == len(seat_ids)
    for viewer in viewers:
        assert await viewer.receive_nothing(0.3)
        await viewer.disconnect()
    assert event.pk not in registry().feeds or not registry().feeds[event.pk].subscribers


async def test_unknown_websocket_paths_are_refused_not_errors(event):
    for path in (f"/ws/events/{event.pk}", "/ws/events/-1/", "/ws/elsewhere/", "/events/1/"):
        socket = WebsocketCommunicator(
            application, path, headers=[(b"origin", b"http://testserver")]
        )
        connected, _ = await socket.connect()
        assert not connected, path


async def test_non_ascii_digits_as_version_get_the_whole_map(event, seat_ids):
    viewer, connected = await open_viewer(event.pk, "%C2%B2")  # "²" passes str.isdigit()
    assert connected
    kind, _, seats = parse(await viewer.receive_from(timeout=2))
    assert kind == "reset" and len(seats) == len(seat_ids)
    await viewer.disconnect()


async def test_a_feed_that_loses_the_channel_layer_closes_its_sockets_until_it_is_back(
    monkeypatch, event, seat_ids, alice
):
    monkeypatch.setattr(feed, "LIVENESS_INTERVAL", 0.1)
    monkeypatch.setattr(feed, "RETRY_DELAY", 0.1)
    viewer, _ = await open_viewer(event.pk, event.version)
    assert await viewer.receive_nothing(0.2)
    lost = registry().feeds[event.pk]
    layer = get_channel_layer()
    send = layer.group_send
    down = True

    async def send_unless_down(*args, **kwargs):
        if down:
            raise ConnectionError("Redis is down")
        return await send(*args, **kwargs)

    monkeypatch.setattr(layer, "group_send", send_unless_down)

    # Told: closed with "try again later", which the page shows as paused and retries.
    assert await viewer.receive_output(timeout=3) == {"type": "websocket.close", "code": 1013}
    assert registry().feeds.get(event.pk) is not lost
    await asyncio.sleep(0.2)
    _, connected = await open_viewer(event.pk, event.version)
    assert not connected  # refused while the layer cannot be subscribed to
    await sync_to_async(services.book_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:1]
    )

    down = False
    await asyncio.sleep(0.2)
    back, connected = await open_viewer(event.pk, event.version)
    assert connected
    kind, version, seats = parse(await back.receive_from(timeout=2))
    assert (kind, version, seats) == ("sync", event.version + 1, {seat_ids[0]: "sold"})
    assert registry().feeds[event.pk] is not lost
    assert await subscriptions_to(event_group(event.pk)) == 1
    await back.disconnect()


async def test_a_busy_feed_whose_probes_come_late_behind_deltas_is_not_lost(monkeypatch, event):
    """A process working through a rush gets its probe late, behind the deltas: what comes
    through shows the subscription is alive, and its viewers stay connected."""
    monkeypatch.setattr(feed, "LIVENESS_INTERVAL", 0.05)
    monkeypatch.setattr(feed, "LIVENESS_TIMEOUT", 0.1)
    viewer, _ = await open_viewer(event.pk, event.version)
    monkeypatch.setattr(feed.EventFeed, "_on_probe", lambda self, token: None)  # never back
    layer = get_channel_layer()

    for version in range(event.version + 1, event.version + 21):  # a delta every 50 ms
        frame = f'<div id="live-version" data-kind="delta" data-version="{version}"></div>'
        await layer.group_send(
            event_group(event.pk), {"type": "seat.delta", "version": version, "frame": frame}
        )
        output = await viewer.receive_output(timeout=2)
        assert output["type"] == "websocket.send", output  # not closed
        await asyncio.sleep(0.05)
    await viewer.disconnect()


async def test_a_feed_whose_group_membership_expired_is_lost_not_deaf(monkeypatch, settings, event):
    """The in-memory layer drops group members after `group_expiry`: the feed's probes go
    through the group, so it notices and its viewers reconnect, instead of hearing nothing."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"group_expiry": 1},
        }
    }
    monkeypatch.setattr(feed, "LIVENESS_INTERVAL", 0.3)
    monkeypatch.setattr(feed, "LIVENESS_TIMEOUT", 0.5)
    viewer, _ = await open_viewer(event.pk, event.version)
    assert await viewer.receive_nothing(0.2)

    assert await viewer.receive_output(timeout=5) == {"type": "websocket.close", "code": 1013}


async def test_deeply_nested_json_from_a_client_is_ignored_and_the_socket_lives_on(
    event, seat_ids, alice
):
    viewer, _ = await open_viewer(event.pk, event.version)
    await viewer.send_to(text_data="[" * 1024)  # json.loads raises RecursionError on this

    assert await viewer.receive_nothing(0.3)  # not closed
    await sync_to_async(services.book_seats)(
        customer=alice, event_id=event.pk, seat_ids=seat_ids[:1]
    )
    kind, _version, seats = parse(await viewer.receive_from(timeout=2))
    assert (kind, seats) == ("delta", {seat_ids[0]: "sold"})
    await viewer.disconnect()
