"""POST /api/events/<id>/bookings answered on the web process's event loop, with no thread.

A booking is one statement (seatline_book_seats), and a signed-in customer's session and
user are one cache read: the request waits on little but those round trips (and the rate
limit's), and handing it to a thread and back cost more CPU than the rest of it
(booking_site/asgi.py). Here the
loop does the waiting, through async clients (seats.loop_io), and runs everything else with
the same code as the thread path:

- Django's request object and the project's middleware: each MiddlewareMixin's
  process_request, process_view and process_response, in MIDDLEWARE order, as Django's
  handler calls them (CSRF, session, user, security headers). Session and user come from
  their cache copies read ahead in one MGET (`CacheCopies.prefetched`).
- The API view's own parts: `seats.api.booking_order` reads the body,
  `services.bookings.booking_statement` builds the statement, `booked` reads its result,
  `seats.api.error_response` and `booking_answer` answer; the rate limit counts in the same
  windows (`ratelimits.abooking`); the change is announced as after any commit. A booking
  with an Idempotency-Key is one statement that claims the key and stores the answer, as on
  the thread path (`seatline_book_seats_once`): a retry is replayed and given back to the
  rate limit.

Whatever it cannot finish without blocking, it leaves to a thread with nothing counted or
written (what it counted is given back): a session or user whose copy is not in the cache, a
cache outage, a middleware that answers by itself (a CSRF refusal, a redirect), an anonymous
request, and with an Idempotency-Key a refusal (stored by `idempotency.respond_once` in a
transaction) or a request over the rate limit (a stored answer may be replayed). Those get
the thread path's answer because the thread path makes it.
"""

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

import psycopg
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import SynchronousOnlyOperation
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import Resolver404, ResolverMatch, get_urlconf, resolve
from django.utils.deprecation import MiddlewareMixin
from django.utils.log import log_response
from django.utils.module_loading import import_string

from seats import api, changes, idempotency, locking, loop_io, ratelimits, services
from seats.errors import BookingError, Busy
from seats.services import bookings

from .sessions import Lookup, WouldBlock, aread_ahead, copies

logger = logging.getLogger(__name__)

# Middleware with nothing to do for this endpoint, left out: WhiteNoise serves static files,
# htmx's marks htmx requests and messages' carries flash messages between pages (the API
# view reads neither, adds no message). Any other middleware that is not a MiddlewareMixin
# turns the loop path off (`LoopBookings.from_settings`).
UNUSED_HERE = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    }
)


@functools.lru_cache(maxsize=4096)
def _resolved(path: str, urlconf: str) -> ResolverMatch | None:
    """The URLconf's match for a path, kept: bookings ask for a few paths (one per event)
    over and over."""
    try:
        return resolve(path, urlconf)
    except Resolver404:
        return None


def _not_called(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the loop path runs the middleware's hooks, not its __call__")


class LoopBookings:
    """Answers booking requests on the event loop (`answer`), or leaves them to a thread."""

    def __init__(self, middleware: list[MiddlewareMixin]) -> None:
        self.middleware = middleware
        self.served = 0  # answered here, not by a thread (tests, operators' curiosity)

    @classmethod
    def from_settings(cls) -> "LoopBookings | None":
        """The loop path for these settings; None where it cannot serve (no PostgreSQL
        function, no Redis cache, BOOKINGS_ON_LOOP off, sessions written on every request
        or holding the CSRF token, another session engine or authentication backend,
        DJANGO_ALLOW_ASYNC_UNSAFE, or a middleware it cannot run)."""
        if not (settings.BOOKINGS_ON_LOOP and services.bookings_in_database()):
            return None
        if not settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
            return None
        if settings.SESSION_SAVE_EVERY_REQUEST or settings.CSRF_USE_SESSIONS:
            # Their middleware would write the session after the booking: a thread's work.
            return None
        if settings.SESSION_ENGINE != "booking_site.sessions" or any(
            backend != "booking_site.auth_cache.CachedModelBackend"
            for backend in settings.AUTHENTICATION_BACKENDS
        ):
            # Only these read their copies through CacheCopies, which the loop reads ahead.
            return None
        if os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
            # Django would then let a database read block the loop instead of refusing it.
            return None
        middleware = []
        for path in settings.MIDDLEWARE:
            if path in UNUSED_HERE:
                continue
            factory: Callable[..., Any] = import_string(path)
            if not (isinstance(factory, type) and issubclass(factory, MiddlewareMixin)):
                logger.warning(
                    "Bookings are served by threads only: %s is not a MiddlewareMixin, whose "
                    "hooks the event loop's booking path could run",
                    path,
                )
                return None
            middleware.append(factory(_not_called))
        return cls(middleware)

    async def answer(self, environ: dict[str, Any]) -> HttpResponseBase | None:
        """The answer to this request if it is a booking the loop can serve; None, with
        nothing counted or written, to leave it to a thread. `environ` is the request's WSGI
        environ with its body read in full."""
        if environ["REQUEST_METHOD"] != "POST" or not environ["PATH_INFO"].endswith("/bookings"):
            return None
        try:
            signed_in = await self._signed_in(environ)
        except Exception:
            # Nothing is counted or written yet: a thread runs the request again and answers
            # as Django does (400 for a host not allowed, a copy it cannot read, ...).
            return None
        if signed_in is None:
            return None
        request, match, user, lookups = signed_in
        try:
            booked = await self._book(request, user, match.kwargs["event_id"])
            if booked is None:
                return None  # given back whatever it counted
            self.served += 1
            response = booked
            with copies.prefetched(lookups):
                for middleware in reversed(self.middleware):
                    if hasattr(middleware, "process_response"):
                        response = middleware.process_response(request, response)
        except Exception as exc:
            # As Django's handler: logged, and answered by handler500 (503 for a database
            # fault a retry can get past, faults.server_error).
            response = response_for_exception(request, exc)
        if response.status_code >= 400:
            log_response(
                "%s: %s", response.reason_phrase, request.path, response=response, request=request
            )
        return response

    async def _signed_in(
        self, environ: dict[str, Any]
    ) -> tuple[HttpRequest, ResolverMatch, User, dict[str, Lookup]] | None:
        """Reads the session and user ahead, then runs the middleware's request and view
        hooks as Django's handler does before the view: the request, its match, the
        signed-in customer and the copies read. None for a request that is not a booking,
        that a hook answered by itself (a CSRF refusal, a redirect), that is anonymous, or
        whose session or user the cache could not give (the database's, a thread's)."""
        request = WSGIRequest(environ)
        match = _resolved(request.path_info, get_urlconf() or settings.ROOT_URLCONF)
        if match is None or match.func is not api.create_booking:
            return None
        session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if not session_key:
            return None  # anonymous: 401, from a thread
        lookups = await aread_ahead(session_key)
        if lookups is None:
            return None
        with copies.prefetched(lookups):
            try:
                request.resolver_match = match
                for middleware in self.middleware:
                    if hasattr(middleware, "process_request") and middleware.process_request(
                        request
                    ):
                        return None
                for middleware in self.middleware:
                    if hasattr(middleware, "process_view") and middleware.process_view(
                        request, match.func, match.args, match.kwargs
                    ):
                        return None
                user = request.user
                if not user.is_authenticated or request.session.modified:
                    return None
            except (WouldBlock, SynchronousOnlyOperation):
                return None  # a read the cache could not answer: the database's
        assert isinstance(user, User)
        return request, match, user, lookups

    async def _book(
        self, request: HttpRequest, customer: User, event_id: int
    ) -> HttpResponse | None:
        """seats.api.create_booking's answer (its `_once` and `_write_once` on PostgreSQL),
        or None, with what it counted given back, for a request a thread must answer: one
        with an Idempotency-Key that is over the rate limit (a stored answer may be
        replayed) or refused (the refusal is stored in a transaction of its own)."""
        try:
            key = idempotency.key_from(request)
            if key is None:
                ratelimits.enforce(await ratelimits.abooking(customer_id=customer.pk))
                return await self._make(request, customer, event_id)
            claim = idempotency.Claim(
                customer_id=customer.pk,
                key=key,
                fingerprint=idempotency.fingerprint(request, api.raw_body(request)),
            )
            decision = await ratelimits.abooking(customer_id=customer.pk)
            if not decision.allowed:
                await ratelimits.agive_back(decision)
                return None
            try:
                return await self._make(request, customer, event_id, once=claim)
            except idempotency.Replayed as replayed:
                await ratelimits.agive_back(decision)
                return replayed.response
            except idempotency.IdempotencyMismatch:
                await ratelimits.agive_back(decision)
                raise
            except Busy:
                raise  # not kept: the retry should try again
            except BookingError:
                await ratelimits.agive_back(decision)
                return None
        except BookingError as exc:
            return api.error_response(exc)

    async def _make(
        self,
        request: HttpRequest,
        customer: User,
        event_id: int,
        once: idempotency.Claim | None = None,
    ) -> HttpResponse:
        """Books what the request asks for: the 201 answer. Raises BookingError, and
        idempotency.Replayed for a key answered before."""
        order = api.booking_order(request)
        statement = bookings.booking_statement(
            customer_id=customer.pk,
            event_id=event_id,
            seat_ids=order.seat_ids,
            hold_id=order.hold_id,
            hide_drafts=not customer.is_staff,
            once=once,
        )
        done = await _run(statement, order.seat_ids)
        booking = bookings.booked(done, customer=customer, event_id=event_id, once=once)
        assert booking.delta is not None  # set by booked
        changes.announce(booking.delta)
        return api.booking_answer(booking)


async def _run(statement: bookings.Statement, seat_ids: list[int] | None) -> dict[str, Any]:
    """Runs the booking statement on the loop's pool: its jsonb result.

    Raises the statement's refusal, Busy for a fault a retry can get past (as
    `locking.transient_faults_as_busy`), or the fault itself."""
    try:
        pool = await loop_io.database()
        async with pool.connection() as connection:
            cursor = await connection.execute(statement.sql, statement.params)
            row = await cursor.fetchone()
    except psycopg.Error as exc:
        refusal = bookings.statement_refusal(exc, seat_ids)
        if refusal is not None:
            raise refusal from None
        if locking.is_transient_psycopg_fault(exc):
            raise Busy(locking.BUSY_MESSAGE) from exc
        raise
    assert row is not None
    done: dict[str, Any] = row[0]
    return done
