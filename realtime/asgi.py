"""The ASGI application: HTTP, the seat-map WebSocket, and lifespan (sweeper, feeds)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import ParseResult

from channels.auth import get_user
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django.utils.module_loading import import_string

from seats import loop_io
from seats.sweeper import sweep_forever

from .feed import registry
from .publish import flush_publisher, serve_from, stop_serving
from .routing import websocket_urlpatterns

logger = logging.getLogger(__name__)

# ASGI's shapes, as Django's own handler declares them.
Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Announcements still queued at shutdown get this long to go out.
SHUTDOWN_PUBLISH_WAIT = 1.0


# channels ships no type hints, so OriginValidator is Any to mypy (see consumers.py).
class AllowedHostsOriginValidator(OriginValidator):  # type: ignore[misc]
    """Channels' validator of that name, but reading ALLOWED_HOSTS as each socket connects
    rather than once at import (so it always agrees with the HTTP side)."""

    def __init__(self, application: ASGIApp) -> None:
        super().__init__(application, [])

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not hosts:
            hosts = ["localhost", "127.0.0.1", "[::1]"]
        self.allowed_origins = hosts
        return bool(super().valid_origin(parsed_origin))


class SessionUserMiddleware:
    """Puts the session cookie's user in scope["user"], resolved once when a socket connects.

    Channels' AuthMiddlewareStack would also wrap every outgoing message to save the session,
    which a seat-map socket never changes: with hundreds of sockets that is real work on every
    frame of the fan-out.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = dict(scope.get("headers", ())).get(b"cookie", b"")
        cookies = parse_cookie(header.decode("latin-1"))
        store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
        session_key = cookies.get(settings.SESSION_COOKIE_NAME)
        if session_key:
            user = await get_user({"session": store(session_key)})
        else:  # no session, nobody logged in: no trip to a thread and the session store
            user = AnonymousUser()
        # The session itself is not kept: a seat-map socket never changes it, and every open
        # socket would hold one. The user goes into the connection's own scope rather than a
        # copy (as Starlette's middleware does): every middleware's copy lives as long as the
        # socket, 0.8 KiB of each idle viewer, and nothing outside this app reads "user".
        scope["user"] = user
        await self.app(scope, receive, send)


class Lifespan:
    """Runs the hold sweeper inside the web process when there is no separate worker
    (the embedded default), and leaves channel-layer groups cleanly on shutdown. Tells the
    publisher which event loop serves this process's sockets (also without lifespan events,
    e.g. under `uvicorn --lifespan off`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        serve_from(asyncio.get_running_loop())
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        stop = asyncio.Event()
        sweeper: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if settings.SWEEP_IN_WEB_PROCESS:
                    sweeper = asyncio.create_task(
                        sweep_forever(interval=settings.HOLD_SWEEP_INTERVAL, stop=stop)
                    )
                    logger.info("Hold sweeper running in the web process")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                stop.set()
                if sweeper is not None:
                    await sweeper
                await registry().close()
                await loop_io.close()
                await stop_serving(SHUTDOWN_PUBLISH_WAIT)
                await asyncio.to_thread(flush_publisher, SHUTDOWN_PUBLISH_WAIT)
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_application(django_asgi_app: ASGIApp) -> ASGIApp:
    websocket = AllowedHostsOriginValidator(SessionUserMiddleware(URLRouter(websocket_urlpatterns)))
    return Lifespan(ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket}))
