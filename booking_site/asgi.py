"""ASGI entry point: HTTP through Django's WSGI handler in a fixed pool of threads (WEB_THREADS),
WebSockets through Channels, lifespan for the in-process hold sweeper (embedded default).

Django's ASGI handler runs each request's sync middleware and view in a new thread, hopping
between it and the event loop for every old-style middleware: most of a cheap request's CPU.
The WSGI handler runs the whole request in one thread of a fixed pool, where its database
connection goes back to the pool at the end (request_finished) as before.
"""

import os
from typing import cast

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi_typing import WSGIApp
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "booking_site.settings")
django_wsgi_app = get_wsgi_application()

from django.conf import settings  # noqa: E402  (needs Django set up first)

from realtime.asgi import ASGIApp, Message, Receive, Scope, Send, build_application  # noqa: E402


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


class BodyFirst:
    """Receives an HTTP request's body on the event loop before the request takes one of the
    WEB_THREADS threads, as Django's ASGI handler did: a client sending its body slowly
    holds no thread, so a few of them cannot stall every other request.

    A body declared larger than DATA_UPLOAD_MAX_MEMORY_SIZE is not read here (Django answers
    413 from its Content-Length alone); a chunked one is read up to one byte past it and given
    the Content-Length of what was read, which WSGI needs to see a body at all.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = _declared_length(scope)
        if declared is not None and limit is not None and declared > limit:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more and (limit is None or size <= limit):
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: there is nobody to answer
            chunk: bytes = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        first: Message | None = {"type": "http.request", "body": body, "more_body": more}

        async def replay() -> Message:
            nonlocal first
            if first is None:
                return await receive()
            message, first = first, None
            return message

        if declared is None:
            headers = [(n, v) for n, v in scope["headers"] if n != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(size).encode())]}
        await self.app(scope, replay, send)


# The casts: django-stubs types a response as HttpResponseBase rather than an iterable of bytes,
# and a2wsgi types ASGI's scope as TypedDicts where the router takes any dict.
wsgi_app = cast(WSGIApp, django_wsgi_app)
http = BodyFirst(cast(ASGIApp, WSGIMiddleware(wsgi_app, workers=settings.WEB_THREADS)))
application = build_application(http)
