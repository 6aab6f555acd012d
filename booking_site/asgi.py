"""ASGI entry point: HTTP through Django's WSGI handler in a fixed pool of threads (WEB_THREADS),
WebSockets through Channels, lifespan for the in-process hold sweeper (embedded default).

Django's ASGI handler runs each request's sync middleware and view in a new thread, hopping
between it and the event loop for every old-style middleware: most of a cheap request's CPU.
Here the whole request runs in one thread of a fixed pool, where its database connection
goes back to the pool at the end (request_finished) as before: the event loop reads the
body, hands the request to a thread once, and gets the whole answer back once.
"""

import asyncio
import contextvars
import functools
import io
import itertools
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, cast

from a2wsgi.wsgi import Body, build_environ
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "booking_site.settings")
django_wsgi_app = get_wsgi_application()

from django.conf import settings  # noqa: E402  (needs Django set up first)
from django.http import HttpResponse, HttpResponseBase  # noqa: E402

from booking_site.loop_bookings import LoopBookings  # noqa: E402
from realtime.asgi import Message, Receive, Scope, Send, build_application  # noqa: E402

logger = logging.getLogger(__name__)

WSGIApp = Any  # a WSGI callable: (environ, start_response) -> iterable of bytes


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _has_body(scope: Scope) -> bool:
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])


async def _read_body(scope: Scope, receive: Receive) -> tuple[BinaryIO, Scope] | None:
    """The request's body, read on the event loop before the request takes one of the
    WEB_THREADS threads: a client sending its body slowly holds no thread, so a few of them
    cannot stall every other request. None if the client left before sending it all.

    A body declared larger than DATA_UPLOAD_MAX_MEMORY_SIZE is left to the thread to read as
    it comes: Django refuses a JSON or form body that large from its Content-Length alone
    (413, 400) without reading it, and reads a multipart upload (a staff layout import) in
    parts. A chunked body is read up to one byte past the limit and given the Content-Length
    of what was read (in the scope returned), which WSGI needs to see a body at all.
    """
    if not _has_body(scope):
        return io.BytesIO(), scope
    limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    declared = _declared_length(scope)
    if declared is not None and limit is not None and declared > limit:
        return cast(BinaryIO, Body(asyncio.get_running_loop(), cast(Any, receive))), scope
    chunks: list[bytes] = []
    size = 0
    more = True
    while more and (limit is None or size <= limit):
        message = await receive()
        if message["type"] == "http.disconnect":
            return None  # the client left: there is nobody to answer
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
    if declared is None:
        headers = [(n, v) for n, v in scope["headers"] if n != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(size).encode())]}
    return io.BytesIO(b"".join(chunks)), scope


def _start_message(status: str, headers: list[tuple[str, str]]) -> Message:
    return {
        "type": "http.response.start",
        "status": int(status.split(" ", 1)[0]),
        "headers": [
            (n.strip().lower().encode("latin1"), v.strip().encode("latin1")) for n, v in headers
        ],
    }


def _django_answer(response: HttpResponseBase) -> tuple[Message, bytes]:
    """A Django answer held in memory as ASGI's start message and body, with the status
    line and headers Django's WSGI handler would give it."""
    assert isinstance(response, HttpResponse)  # the loop path answers nothing streamed
    status = f"{response.status_code} {response.reason_phrase}"
    cookies = [("Set-Cookie", c.output(header="")) for c in response.cookies.values()]
    return _start_message(status, [*response.items(), *cookies]), response.content


class WSGIThreads:
    """Serves HTTP with a WSGI application in a fixed pool of `threads` threads.

    The event loop reads the body (`_read_body`) and hands the request to a thread once. A
    response held in memory (Django's HttpResponse: every API answer and page) comes back
    whole, after the response is closed in that thread (request_finished: the database
    connection is back in its pool), and the loop sends it: one hand-off each way. A
    streaming response (static files, StreamingHttpResponse) is sent chunk by chunk from the
    thread, each waiting until the loop has taken it.

    a2wsgi's WSGIMiddleware, used before, waits in the thread for the loop at the response's
    start, at each chunk and at its end, and for the body it had already been given: four
    round trips between thread and loop per request, each a wake-up and a hand-over of the
    interpreter lock, which cost a booking more CPU than its database statement.
    """

    def __init__(self, app: WSGIApp, *, threads: int, loop: LoopBookings | None = None) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="web")
        # Bookings answered on the event loop itself, when it can (booking_site.loop_bookings).
        self.loop = loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        read = await _read_body(scope, receive)
        if read is None:
            return
        body, scope = read
        loop = asyncio.get_running_loop()
        environ: dict[str, Any] = dict(build_environ(cast(Any, scope), cast(Any, body)))
        whole = await self._on_loop(environ, body)
        if whole is None:

            async def sending(message: Message) -> None:
                await send(message)

            def send_from_thread(message: Message) -> None:
                asyncio.run_coroutine_threadsafe(sending(message), loop).result()

            respond = functools.partial(
                contextvars.copy_context().run, self._respond, environ, send_from_thread
            )
            whole = await loop.run_in_executor(self.executor, respond)
        if whole is not None:
            start, content = whole
            await send(start)
            await send({"type": "http.response.body", "body": content})

    async def _on_loop(
        self, environ: dict[str, Any], body: BinaryIO
    ) -> tuple[Message, bytes] | None:
        """The whole answer if the loop path (`self.loop`) answers the request; None to
        leave it to a thread."""
        if self.loop is None or not isinstance(body, io.BytesIO):
            return None
        # Its own copy of the environ and body: one it leaves to a thread is unread.
        response = await self.loop.answer({**environ, "wsgi.input": io.BytesIO(body.getvalue())})
        return None if response is None else _django_answer(response)

    def _respond(
        self, environ: dict[str, Any], send_from_thread: Callable[[Message], None]
    ) -> tuple[Message, bytes] | None:
        """Runs in a pool thread: the whole answer if it is held in memory, else None once
        it has been streamed through `send_from_thread`."""
        started: list[Message] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [_start_message(status, headers)]
            return None  # no write() callable: Django never uses it

        result: Iterable[bytes] = self.app(environ, start_response)
        if getattr(result, "streaming", True) is False:
            try:
                content = b"".join(result)
            finally:
                self._close(result)
            return started[0], content
        try:
            chunks = iter(result)
            # A WSGI app may call start_response as late as its first chunk (Django never does).
            first = [] if started else [next(chunks, b"")]
            send_from_thread(started[0])
            for chunk in itertools.chain(first, chunks):
                if chunk:
                    send_from_thread(
                        {"type": "http.response.body", "body": chunk, "more_body": True}
                    )
            send_from_thread({"type": "http.response.body", "body": b""})
            return None
        finally:
            self._close(result)

    @staticmethod
    def _close(result: Iterable[bytes]) -> None:
        """Closes the answer (Django: request_finished, which hands the database connection
        back). An answer already made still goes out if a receiver fails here: the work it
        reports is done."""
        close = getattr(result, "close", None)
        if close is None:
            return
        try:
            close()
        except Exception:
            logger.exception("Closing an HTTP answer failed; the answer is sent all the same")


http = WSGIThreads(django_wsgi_app, threads=settings.WEB_THREADS, loop=LoopBookings.from_settings())
application = build_application(http)
