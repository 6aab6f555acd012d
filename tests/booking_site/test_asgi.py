"""booking_site.asgi.WSGIThreads: what the event loop sends for a WSGI answer held in memory
and for a streamed one, when the app's clean-up runs, and what the app reads as its body."""

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

from booking_site.asgi import WSGIThreads

Environ = dict[str, Any]


def scope(method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/somewhere",
        "raw_path": b"/somewhere",
        "query_string": b"a=1",
        "root_path": "",
        "headers": headers or [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


def serve(
    app: Any,
    request: dict[str, Any],
    bodies: list[dict[str, Any]],
    sent: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Runs one request through WSGIThreads(app) and returns the messages it sent (into
    `sent`, if given, as they go)."""
    sent = [] if sent is None else sent

    async def run() -> None:
        pending = list(bodies)

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop(0)
            await asyncio.sleep(3600)  # a client that sends nothing more
            raise AssertionError("not reached")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        adapter = WSGIThreads(app, threads=2)
        try:
            await adapter(request, receive, send)
        finally:
            adapter.executor.shutdown()

    asyncio.run(run())
    return sent


class Answer:
    """A WSGI answer like Django's: `streaming` says whether it is held in memory, and
    `close` (request_finished) records which thread ran it and what had been sent by then."""

    def __init__(self, chunks: list[bytes], *, streaming: bool, sent: list[dict[str, Any]]):
        self.chunks = chunks
        self.streaming = streaming
        self.sent = sent
        self.closed_in: str | None = None
        self.sent_when_closed: int | None = None

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed_in = threading.current_thread().name
        self.sent_when_closed = len(self.sent)


def test_an_answer_held_in_memory_is_sent_whole_after_the_app_closed_it():
    sent: list[dict[str, Any]] = []
    seen: list[Environ] = []
    answer = Answer([b"hello ", b"world"], streaming=False, sent=sent)

    def app(environ: Environ, start_response: Any) -> Answer:
        seen.append(environ)
        start_response("201 Created", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1")])
        return answer

    serve(app, scope(), [], sent)

    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"text/plain"), (b"set-cookie", b"a=1")],
        },
        {"type": "http.response.body", "body": b"hello world"},
    ]
    # Closed in the pool thread (Django hands the database connection back there) before
    # anything went out.
    assert answer.closed_in is not None and answer.closed_in.startswith("web")
    assert answer.sent_when_closed == 0
    assert (seen[0]["PATH_INFO"], seen[0]["QUERY_STRING"], seen[0]["REMOTE_ADDR"]) == (
        "/somewhere",
        "a=1",
        "127.0.0.1",
    )


def test_a_streamed_answer_goes_out_chunk_by_chunk_as_the_app_makes_them():
    sent: list[dict[str, Any]] = []
    made: list[int] = []

    def chunks() -> Iterator[bytes]:
        for n in range(3):
            made.append(len(sent))  # what the loop had sent when this chunk was made
            yield f"part {n};".encode()

    class Streamed(Answer):
        def __iter__(self) -> Iterator[bytes]:
            return chunks()

    answer = Streamed([], streaming=True, sent=sent)

    def app(environ: Environ, start_response: Any) -> Answer:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return answer

    messages = serve(app, scope(), [], sent)

    assert [m.get("body") for m in messages] == [None, b"part 0;", b"part 1;", b"part 2;", b""]
    assert messages[0]["status"] == 200
    assert [m.get("more_body") for m in messages[1:]] == [True, True, True, None]
    # Each chunk was out before the next was made: nothing is gathered in memory.
    assert made == [1, 2, 3]
    assert answer.sent_when_closed == 5


def test_the_app_reads_the_whole_body_sent_in_pieces_and_a_chunked_one_gets_its_length():
    bodies: list[tuple[bytes, str]] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        length = environ["CONTENT_LENGTH"]
        bodies.append((environ["wsgi.input"].read(int(length)), length))
        start_response("204 No Content", [])
        return []

    pieces = [
        {"type": "http.request", "body": b'{"seats": ', "more_body": True},
        {"type": "http.request", "body": b"[1, 2]}", "more_body": False},
    ]
    declared = scope("POST", [(b"host", b"t"), (b"content-length", b"17")])
    chunked = scope("POST", [(b"host", b"t"), (b"transfer-encoding", b"chunked")])
    assert serve(app, declared, list(pieces))[0]["status"] == 204
    assert serve(app, chunked, list(pieces))[0]["status"] == 204

    assert bodies == [(b'{"seats": [1, 2]}', "17"), (b'{"seats": [1, 2]}', "17")]


def test_a_body_declared_over_the_memory_limit_is_read_by_the_app_as_it_comes(settings):
    """Django refuses a JSON or form body that large unread, but reads a multipart upload (a
    staff layout import) in parts: it must get all of it."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    received: list[bytes] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        received.append(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        start_response("200 OK", [])
        return []

    upload = b"--b\r\nContent-Disposition: form-data; name=f\r\n\r\n" + b"x" * 50 + b"\r\n--b--"
    request = scope("POST", [(b"host", b"t"), (b"content-length", str(len(upload)).encode())])
    parts = [
        {"type": "http.request", "body": upload[:30], "more_body": True},
        {"type": "http.request", "body": upload[30:], "more_body": False},
    ]

    assert serve(app, request, parts)[0]["status"] == 200
    assert received == [upload]


def test_an_answer_whose_closing_fails_is_still_sent(caplog):
    """Closing runs Django's request_finished receivers; what the request did is done."""
    sent: list[dict[str, Any]] = []

    class FailsToClose(Answer):
        def close(self) -> None:
            raise RuntimeError("a receiver failed")

    def app(environ: Environ, start_response: Any) -> Answer:
        start_response("201 Created", [])
        return FailsToClose([b"booked"], streaming=False, sent=sent)

    messages = serve(app, scope(), [])

    assert [m.get("status") or m.get("body") for m in messages] == [201, b"booked"]
    assert "Closing an HTTP answer failed" in caplog.text


def test_a_client_that_leaves_before_its_body_is_sent_nothing_and_runs_nothing():
    calls: list[Environ] = []

    def app(environ: Environ, start_response: Any) -> list[bytes]:
        calls.append(environ)
        start_response("200 OK", [])
        return [b"x"]

    request = scope("POST", [(b"host", b"t"), (b"content-length", b"100")])
    left = [
        {"type": "http.request", "body": b"partial", "more_body": True},
        {"type": "http.disconnect"},
    ]
    assert serve(app, request, left) == []
    assert calls == []
