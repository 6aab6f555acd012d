"""A customer's holds and bookings: Idempotency-Key on every POST, one retry with the same
key after no answer (through the next server) or a 503, and how the answers are counted.
Against scripted servers."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from loadtest.customer import Customer, Ledger
from loadtest.http import Session

from .servers import free_port

pytestmark = pytest.mark.asyncio

DROP = "drop"  # read the request, close the connection without an answer
TAKEN = (409, {"error": "Taken.", "code": "seats_unavailable", "seats": [1, 2]})
BUSY = (503, {"error": "Busy, try again.", "code": "busy"}, {"Retry-After": "0"})


@dataclass
class ScriptedServer:
    """Answers each request with the next step of its script."""

    script: list[object]
    requests: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in head[1:] if line)
                }
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append({"request-line": head[0], **headers})
                step = self.script.pop(0)
                if step == DROP:
                    break
                status, payload, *extra = step
                body = json.dumps(payload).encode()
                lines = [f"HTTP/1.1 {status} Scripted", "Content-Type: application/json"]
                lines += [f"{k}: {v}" for k, v in (extra[0] if extra else {}).items()]
                lines.append(f"Content-Length: {len(body)}")
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def keys(self) -> list[str]:
        return [request.get("idempotency-key", "") for request in self.requests]


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedServer, Customer]]:
    server = ScriptedServer([])
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    session = Session(f"http://127.0.0.1:{port}")
    session.cookies.update(csrftoken="t", sessionid="s")
    yield server, Customer(1, session, event_id=7, ledger=Ledger())
    await session.close()
    listener.close()
    await listener.wait_closed()


async def test_a_booking_without_an_answer_is_sent_once_more_with_the_same_key(scripted):
    server, customer = scripted
    server.script = [DROP, TAKEN]
    attempt = await customer.book(seat_ids=[1, 2])

    assert [r["request-line"] for r in server.requests] == [
        "POST /api/events/7/bookings HTTP/1.1"
    ] * 2
    first, second = server.keys()
    assert len(first) >= 16 and first == second
    # The retry's 409 may be the server refusing our own first try: a conflict, not an error.
    assert attempt.outcome == "conflict"
    bookings = customer.ledger.bookings.as_dict()
    assert (bookings["ok"], bookings["conflict"], bookings["error"]) == (0, 1, 0)
    assert bookings["retries"] == {
        "after_no_answer": 1,
        "cut_off": 1,
        "after_503": 0,
        "outcomes": {"conflict": 1},
    }


async def test_a_busy_answer_is_retried_with_the_same_key_and_its_success_counts_once(scripted):
    server, customer = scripted
    server.script = [BUSY, (201, {"booking": 5, "seats": [1, 2], "total": "80.00"})]
    attempt = await customer.book(seat_ids=[1, 2])

    assert attempt.outcome == "ok"
    first, second = server.keys()
    assert first and first == second
    ledger = customer.ledger
    bookings = ledger.bookings.as_dict()
    assert (bookings["ok"], bookings["busy"], bookings["error"]) == (1, 0, 0)
    assert bookings["latency"]["count"] == 1
    assert bookings["retries"] == {
        "after_no_answer": 0,
        "cut_off": 0,
        "after_503": 1,
        "outcomes": {"ok": 1},
    }
    assert ledger.booked == [[1, 2]] and ledger.server_errors == 0


async def test_only_one_retry_then_the_request_counts_as_failed(scripted):
    server, customer = scripted
    server.script = [DROP, DROP, BUSY, BUSY]
    assert (await customer.book(seat_ids=[1])).outcome == "error"
    assert (await customer.book(seat_ids=[1])).outcome == "busy"

    assert len(server.requests) == 4
    keys = server.keys()
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]
    bookings = customer.ledger.bookings.as_dict()
    assert (bookings["error"], bookings["busy"]) == (1, 1)
    assert bookings["retries"] == {
        "after_no_answer": 1,
        "cut_off": 1,
        "after_503": 1,
        "outcomes": {"error": 1, "busy": 1},
    }


async def test_every_hold_and_booking_carries_its_own_key(scripted):
    server, customer = scripted
    server.script = [
        (201, {"hold": 3, "seats": [1, 2], "expires_at": "2030-01-01T00:00:00Z"}),
        (201, {"booking": 4, "seats": [1, 2], "total": "80.00"}),
    ]
    assert await customer.hold_then_book([1, 2]) == "ok"

    assert [r["request-line"].split()[1] for r in server.requests] == [
        "/api/events/7/holds",
        "/api/events/7/bookings",
    ]
    hold_key, booking_key = server.keys()
    assert hold_key and booking_key and hold_key != booking_key
    assert customer.ledger.holds.as_dict()["retries"]["after_no_answer"] == 0


async def test_busy_retries_until_answered_keep_one_key(scripted):
    server, customer = scripted
    server.script = [BUSY, BUSY, BUSY, (201, {"booking": 5, "seats": [1], "total": "40.00"})]
    assert (await customer.book_until_answered(seat_ids=[1])).outcome == "ok"

    # Two calls of two tries each; had a try gone through unanswered, only its own key
    # would get its booking back instead of a conflict with itself.
    keys = server.keys()
    assert len(keys) == 4 and len(set(keys)) == 1 and keys[0]
    bookings = customer.ledger.bookings.as_dict()
    assert (bookings["ok"], bookings["busy"]) == (1, 1)


async def start(server: ScriptedServer) -> tuple[asyncio.Server, str]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    return listener, f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"


async def test_a_request_cut_off_is_retried_through_the_next_server_which_keeps_the_customer():
    dying, survivor = ScriptedServer([DROP]), ScriptedServer([])
    survivor.script = [
        (201, {"booking": 5, "seats": [1, 2], "total": "80.00"}),
        (201, {"booking": 6, "seats": [3], "total": "40.00"}),
    ]
    (dying_listener, dying_url), (survivor_listener, survivor_url) = [
        await start(server) for server in (dying, survivor)
    ]
    session = Session(dying_url)
    session.cookies.update(csrftoken="t", sessionid="s")
    customer = Customer(1, session, event_id=7, ledger=Ledger(), urls=[dying_url, survivor_url])
    try:
        assert (await customer.book(seat_ids=[1, 2])).outcome == "ok"
        assert (await customer.book(seat_ids=[3])).outcome == "ok"
    finally:
        await session.close()
        for listener in (dying_listener, survivor_listener):
            listener.close()
            await listener.wait_closed()

    # The cut-off request went to the survivor with its key, cookies and the survivor's
    # own origin (Django's CSRF check compares it with the host); the next one stayed there.
    assert len(dying.requests) == 1 and len(survivor.requests) == 2
    assert survivor.keys()[0] == dying.keys()[0] != survivor.keys()[1]
    retried = survivor.requests[0]
    assert retried["origin"] == survivor_url and retried["cookie"] == "csrftoken=t; sessionid=s"
    bookings = customer.ledger.bookings.as_dict()
    assert bookings["ok"] == 2 and bookings["error"] == 0
    assert bookings["retries"]["after_no_answer"] == bookings["retries"]["cut_off"] == 1
    assert customer.ledger.booked == [[1, 2], [3]]


async def test_a_refused_connection_is_not_counted_as_cut_off():
    survivor = ScriptedServer([(201, {"booking": 5, "seats": [1], "total": "40.00"})])
    listener, survivor_url = await start(survivor)
    gone = f"http://127.0.0.1:{free_port()}"
    session = Session(gone)
    session.cookies.update(csrftoken="t", sessionid="s")
    customer = Customer(1, session, event_id=7, ledger=Ledger(), urls=[gone, survivor_url])
    try:
        assert (await customer.book(seat_ids=[1])).outcome == "ok"
    finally:
        await session.close()
        listener.close()
        await listener.wait_closed()
    retries = customer.ledger.bookings.as_dict()["retries"]
    assert (retries["after_no_answer"], retries["cut_off"]) == (1, 0)
