"""booking_site.loop_bookings: POST /api/events/<id>/bookings answered on the event loop,
through the real ASGI adapter (booking_site.asgi.WSGIThreads) with real PostgreSQL and Redis.

Each answer is checked against the thread path's answer to the same request (the same
adapter without the loop path): status, body and headers alike. `LoopBookings.served` tells
which path answered."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.test import Client

from booking_site.asgi import WSGIThreads, django_wsgi_app
from booking_site.loop_bookings import LoopBookings
from booking_site.sessions import copies
from events.models import Event
from realtime.publish import event_group
from seats import loop_io
from seats.models import Booking, Seat, SeatChange
from tests.conftest import make_event, make_user

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]

TOKEN = "a" * 32  # an unmasked CSRF secret is a valid cookie and header token


class Customer:
    def __init__(self, username: str, **fields: Any) -> None:
        self.user = make_user(username, **fields)
        client = Client()
        client.force_login(self.user)  # saves the session and its copy, copies the user
        self.session = client.cookies[settings.SESSION_COOKIE_NAME].value

    def scope(
        self,
        event_id: int,
        body: bytes,
        *,
        csrf: str | None = TOKEN,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        host: bytes = b"testserver",
        signed_in: bool = True,
    ) -> dict[str, Any]:
        cookie = f"csrftoken={TOKEN}"
        if signed_in:
            cookie = f"{settings.SESSION_COOKIE_NAME}={self.session}; {cookie}"
        path = f"/api/events/{event_id}/bookings"
        all_headers = [
            (b"host", host),
            (b"cookie", cookie.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *([(b"x-csrftoken", csrf.encode())] if csrf else []),
            *headers,
        ]
        return {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": all_headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }


class Answer:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start = messages[0]
        self.status: int = start["status"]
        self.headers = {name.decode(): value.decode() for name, value in start["headers"]}
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    def json(self) -> Any:
        return json.loads(self.body)

    def same_as(self, other: "Answer") -> None:
        assert (self.status, self.body) == (other.status, other.body)
        # Content-Length follows the body, checked above.
        assert self.headers == other.headers


class Servers:
    """The same Django site behind two adapters: with the loop path and without it."""

    def __init__(self) -> None:
        self.loop = LoopBookings.from_settings()
        assert self.loop is not None  # PostgreSQL, Redis and the defaults
        self.with_loop = WSGIThreads(django_wsgi_app, threads=2, loop=self.loop)
        self.threads_only = WSGIThreads(django_wsgi_app, threads=2)

    async def send(self, app: WSGIThreads, scope: dict[str, Any], body: bytes) -> Answer:
        messages: list[dict[str, Any]] = []
        sent = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if sent:
                return sent.pop()
            await asyncio.sleep(3600)
            raise AssertionError("not reached")

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await app(scope, receive, send)
        return Answer(messages)

    async def on_loop(self, scope: dict[str, Any], body: bytes) -> Answer:
        return await self.send(self.with_loop, scope, body)

    async def in_thread(self, scope: dict[str, Any], body: bytes) -> Answer:
        return await self.send(self.threads_only, scope, body)

    def close(self) -> None:
        self.with_loop.executor.shutdown()
        self.threads_only.executor.shutdown()


def run(test: Callable[[Servers], Awaitable[Any]]) -> Any:
    """Runs `test` on a fresh event loop, closing that loop's connections after it."""
    servers = Servers()

    async def main() -> Any:
        try:
            return await test(servers)
        finally:
            await loop_io.close()

    try:
        return asyncio.run(main())
    finally:
        servers.close()


def seats_body(*seat_ids: int) -> bytes:
    return json.dumps({"seats": list(seat_ids)}).encode()


@pytest.fixture(autouse=True)
def cache_answers():
    """A cache no earlier test left marked as failing (the loop path then leaves every
    session to a thread, as it should during an outage)."""
    copies.reset()


@pytest.fixture
def concert(venue):
    return make_event(venue, rows=2, seats_per_row=10)


@pytest.fixture
def seats(concert):
    return list(concert.seats.order_by("pk").values_list("pk", flat=True))


def test_a_booking_is_made_on_the_loop_and_answered_as_a_thread_answers_it(venue, concert, seats):
    alice = Customer("alice")
    layer = get_channel_layer()

    async def test(servers: Servers) -> tuple[Answer, Answer, dict[str, Any]]:
        channel = await layer.new_channel()
        await layer.group_add(event_group(concert.pk), channel)
        body = seats_body(seats[0])
        on_loop = await servers.on_loop(alice.scope(concert.pk, body), body)
        served = servers.loop.served
        in_thread = await servers.in_thread(
            alice.scope(concert.pk, seats_body(seats[1])), seats_body(seats[1])
        )
        assert servers.loop.served == served == 1
        # The loop's booking is announced to live viewers, like any committed change.
        announced = await asyncio.wait_for(layer.receive(channel), 10)
        return on_loop, in_thread, announced

    on_loop, in_thread, announced = run(test)
    assert on_loop.status == in_thread.status == 201
    loop_booking, thread_booking = on_loop.json(), in_thread.json()
    assert loop_booking == {
        "booking": loop_booking["booking"],
        "seats": [seats[0]],
        "total": "40.00",
    }
    assert thread_booking["seats"] == [seats[1]]
    # The middleware's headers (Vary: Cookie ...); Content-Length follows each body (the
    # booking ids may differ in length).
    for answer in (on_loop, in_thread):
        assert int(answer.headers.pop("content-length")) == len(answer.body)
    assert on_loop.headers == in_thread.headers
    assert "Cookie" in on_loop.headers["vary"]
    assert on_loop.headers["x-frame-options"] == "DENY"

    booking = Booking.objects.get(pk=loop_booking["booking"])
    assert booking.customer_id == alice.user.pk and booking.event_id == concert.pk
    assert Seat.objects.get(pk=seats[0]).state == "sold"
    change = SeatChange.objects.get(seat_id=seats[0])
    assert (change.to_state, change.actor_id, change.cause) == ("sold", alice.user.pk, "book")
    assert announced["type"] == "seat.delta" and announced["version"] == change.version
    assert f'id="seat-{seats[0]}"' in announced["frame"]
    assert 'data-state="sold"' in announced["frame"]


def test_refusals_on_the_loop_are_the_thread_paths_refusals(venue, concert, seats, settings):
    settings.RATE_LIMIT_BOOKINGS = []  # each request is sent twice; the limit has its test
    alice, bob = Customer("alice"), Customer("bob")
    draft = make_event(venue, name="Draft", rows=1, seats_per_row=2, on_sale=False)
    other_event_seat = Seat.objects.filter(event=draft).values_list("pk", flat=True).first()
    Event.objects.filter(pk=concert.pk).update(max_seats_per_customer=3)

    cases = [
        ("taken", bob, concert.pk, seats_body(seats[0])),
        ("not this event's seat", alice, concert.pk, seats_body(other_event_seat)),
        ("draft event", alice, draft.pk, seats_body(other_event_seat)),
        ("no such event", alice, 999999, seats_body(seats[5])),
        ("over the seat limit", alice, concert.pk, seats_body(*seats[6:10])),
        ("not JSON", alice, concert.pk, b"{"),
        ("no seats", alice, concert.pk, b"{}"),
        ("bad ids", alice, concert.pk, b'{"seats": ["x"]}'),
        ("no such hold", alice, concert.pk, b'{"hold": 123456}'),
    ]

    async def test(servers: Servers) -> list[tuple[str, Answer, Answer, int]]:
        body = seats_body(seats[0])
        first = await servers.on_loop(alice.scope(concert.pk, body), body)
        assert first.status == 201
        compared = []
        for name, who, event_id, body in cases:
            before = servers.loop.served
            on_loop = await servers.on_loop(who.scope(event_id, body), body)
            served = servers.loop.served - before
            in_thread = await servers.in_thread(who.scope(event_id, body), body)
            compared.append((name, on_loop, in_thread, served))
        return compared

    for name, on_loop, in_thread, served in run(test):
        assert served == 1, name
        assert on_loop.status in {400, 404, 409}, (name, on_loop.status, on_loop.body)
        on_loop.same_as(in_thread)
    # Nothing but the first booking was made.
    assert Booking.objects.count() == 1
    assert Seat.objects.filter(state="sold").count() == 1


def test_requests_it_cannot_finish_without_blocking_go_to_a_thread(venue, concert, seats):
    alice = Customer("alice")
    body = seats_body(seats[0])

    async def test(servers: Servers) -> dict[str, tuple[Answer, int]]:
        answers = {}

        async def send(name: str, scope: dict[str, Any], body: bytes = body) -> Answer:
            before = servers.loop.served
            answer = await servers.on_loop(scope, body)
            answers[name] = (answer, servers.loop.served - before)
            return answer

        await send("anonymous", alice.scope(concert.pk, body, signed_in=False))
        await send("no CSRF token", alice.scope(concert.pk, body, csrf=None))
        await send("wrong CSRF token", alice.scope(concert.pk, body, csrf="b" * 32))
        await send("bad host", alice.scope(concert.pk, body, host=b"evil.example"))
        # No copy of the session in the cache: read from the database, by a thread.
        caches["default"].delete(f"session:{alice.session}")
        await send("session not in the cache", alice.scope(concert.pk, body))
        # The thread copied it back: the next is the loop's again.
        second = seats_body(seats[1])
        await send("after the copy is back", alice.scope(concert.pk, second), second)
        return answers

    answers = run(test)
    status = {name: (answer.status, served) for name, (answer, served) in answers.items()}
    assert status == {
        "anonymous": (401, 0),
        "no CSRF token": (403, 0),
        "wrong CSRF token": (403, 0),
        "bad host": (400, 0),
        "session not in the cache": (201, 0),
        "after the copy is back": (201, 1),
    }
    assert answers["no CSRF token"][0].json()["code"] == "csrf_failed"
    assert set(Seat.objects.filter(state="sold").values_list("pk", flat=True)) == set(seats[:2])


def test_keyed_bookings_on_the_loop_are_answered_once_and_retries_are_not_counted(
    venue, concert, seats, settings
):
    settings.RATE_LIMIT_BOOKINGS = [(3, 60)]
    alice, bob = Customer("alice"), Customer("bob")

    def keyed(who: Customer, key: bytes, *seat_ids: int) -> tuple[dict[str, Any], bytes]:
        body = seats_body(*seat_ids)
        return who.scope(concert.pk, body, headers=((b"idempotency-key", key),)), body

    async def test(servers: Servers) -> dict[str, tuple[Answer, int]]:
        answers = {}

        async def send(name: str, request: tuple[dict[str, Any], bytes], thread=False) -> None:
            before = servers.loop.served
            answer = await (servers.in_thread if thread else servers.on_loop)(*request)
            answers[name] = (answer, servers.loop.served - before)

        await send("first", keyed(alice, b"k-1", seats[0]))
        for n in range(3):  # given back: they do not use up the limit of 3
            await send(f"retry {n}", keyed(alice, b"k-1", seats[0]))
        await send("same key, other seats", keyed(alice, b"k-1", seats[1]))
        await send("same key, other seats, thread", keyed(alice, b"k-1", seats[1]), thread=True)
        await send("bob, seat taken", keyed(bob, b"k-2", seats[0]))  # stored by a thread
        await send("bob's retry", keyed(bob, b"k-2", seats[0]))
        await send("second", keyed(alice, b"k-3", seats[2]))
        return answers

    answers = run(test)
    status = {name: (answer.status, served) for name, (answer, served) in answers.items()}
    assert status == {
        "first": (201, 1),
        "retry 0": (201, 1),
        "retry 1": (201, 1),
        "retry 2": (201, 1),
        "same key, other seats": (422, 1),
        "same key, other seats, thread": (422, 0),
        "bob, seat taken": (409, 0),
        "bob's retry": (409, 1),
        "second": (201, 1),
    }
    first = answers["first"][0]
    for n in range(3):
        assert answers[f"retry {n}"][0].body == first.body
    answers["same key, other seats"][0].same_as(answers["same key, other seats, thread"][0])
    assert answers["bob's retry"][0].body == answers["bob, seat taken"][0].body
    assert Booking.objects.count() == 2
    assert set(Seat.objects.filter(state="sold").values_list("pk", flat=True)) == {
        seats[0],
        seats[2],
    }


def test_the_rate_limit_counts_loop_and_thread_bookings_together(venue, concert, seats, settings):
    settings.RATE_LIMIT_BOOKINGS = [(3, 60)]
    alice = Customer("alice")

    async def test(servers: Servers) -> list[Answer]:
        answers = []
        paths = [servers.in_thread, servers.on_loop, servers.on_loop, servers.on_loop]
        for n, send in enumerate(paths):
            body = seats_body(seats[n])
            answers.append(await send(alice.scope(concert.pk, body), body))
        return answers

    answers = run(test)
    assert [a.status for a in answers] == [201, 201, 201, 429]
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert Seat.objects.get(pk=seats[3]).state == "available"


def test_a_seat_locked_too_long_answers_busy_and_changes_nothing(venue, concert, seats, settings):
    settings.BOOKING_LOCK_TIMEOUT_MS = 200
    alice = Customer("alice")
    body = seats_body(seats[0])
    params = connection.get_connection_params()
    conninfo = {k: v for k, v in params.items() if k not in ("cursor_factory", "context")}

    async def test(servers: Servers) -> Answer:
        with psycopg.connect(**conninfo) as other:
            other.execute("SELECT 1 FROM seats_seat WHERE id = %s FOR UPDATE", [seats[0]])
            return await servers.on_loop(alice.scope(concert.pk, body), body)

    answer = run(test)
    assert answer.status == 503
    assert answer.json()["code"] == "busy"
    assert answer.headers["retry-after"] == "1"
    assert Seat.objects.get(pk=seats[0]).state == "available"
    assert not Booking.objects.exists()


def test_many_customers_at_once_on_the_loop_sell_a_seat_once(venue, concert, seats):
    customers = [Customer(f"c{n}") for n in range(12)]
    body = seats_body(seats[0])

    async def test(servers: Servers) -> list[Answer]:
        return list(
            await asyncio.gather(
                *(servers.on_loop(c.scope(concert.pk, body), body) for c in customers)
            )
        )

    answers = run(test)
    assert sorted(a.status for a in answers) == [201] + [409] * 11
    assert Booking.objects.count() == 1
    assert Seat.objects.get(pk=seats[0]).state == "sold"


@pytest.mark.parametrize(
    "setting",
    [
        {"BOOKINGS_ON_LOOP": False},
        {"BOOKINGS_IN_DATABASE": False},
        {"SESSION_SAVE_EVERY_REQUEST": True},
        {"CSRF_USE_SESSIONS": True},
        {"MIDDLEWARE": [*settings.MIDDLEWARE, "tests.booking_site.test_loop_bookings.plain"]},
        {"SESSION_ENGINE": "django.contrib.sessions.backends.cache"},
        {"AUTHENTICATION_BACKENDS": ["django.contrib.auth.backends.ModelBackend"]},
        {"DJANGO_ALLOW_ASYNC_UNSAFE": "true"},
    ],
    ids=lambda setting: next(iter(setting)),
)
def test_settings_it_cannot_serve_turn_the_loop_path_off(settings, setting, monkeypatch):
    assert LoopBookings.from_settings() is not None
    for name, value in setting.items():
        if name == "DJANGO_ALLOW_ASYNC_UNSAFE":
            monkeypatch.setenv(name, value)  # an environment variable, not a setting
        else:
            setattr(settings, name, value)
    assert LoopBookings.from_settings() is None


def plain(get_response):
    """A middleware that is a plain function: the loop path cannot run it."""
    return get_response
