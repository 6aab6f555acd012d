"""JSON API for the seat map, holds and bookings.

Session-authenticated; unsafe methods need the CSRF token in the `X-CSRFToken` header.
Views only parse and validate the request, call one service, and turn its BookingError into
a JSON answer (see `api_view`). Every error, including 401/405/CSRF, is JSON. Writes are
rate-limited (seats.ratelimits: 429 with Retry-After); holds and bookings sent with an
Idempotency-Key are answered once per key (seats.idempotency), and a retry answered from
its stored answer is not counted against the limits.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views import csrf
from django.views.decorators.csrf import ensure_csrf_cookie

from events.models import Event

from . import idempotency, ratelimits, selectors, services
from .errors import BookingError, Busy, InvalidRequest, NotFound
from .models import Booking, Hold, seat_code
from .parsing import clean_seat_ids, parse_id

View = Callable[..., HttpResponse]


class NotAuthenticated(BookingError):
    status = 401
    code = "not_authenticated"


class MethodNotAllowed(BookingError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(BookingError):
    status = 413
    code = "too_large"


def error_response(exc: BookingError) -> JsonResponse:
    """The JSON answer for a domain error: its status and `as_dict()` body."""
    response = JsonResponse(exc.as_dict(), status=exc.status)
    if isinstance(exc, Busy):
        # Lock waits are short (BOOKING_LOCK_TIMEOUT_MS), so an immediate retry usually works.
        response["Retry-After"] = "1"
    elif isinstance(exc, ratelimits.RateLimited):
        response["Retry-After"] = str(exc.retry_after)
    return response


def api_view(*methods: str, login_required: bool = True) -> Callable[[View], View]:
    """Wraps a view: answers 405 for other methods and 401 for anonymous users (unless
    `login_required` is False), and turns any BookingError the view raises into JSON."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise MethodNotAllowed(f"Use {' or '.join(methods)} here.")
                if login_required and not request.user.is_authenticated:
                    raise NotAuthenticated("Log in first.")
                return view(request, *args, **kwargs)
            except BookingError as exc:
                response = error_response(exc)
                if isinstance(exc, MethodNotAllowed):
                    response["Allow"] = ", ".join(methods)
                return response

        return wrapper

    return decorate


def raw_body(request: HttpRequest) -> bytes:
    """The request's body. Raises PayloadTooLarge past DATA_UPLOAD_MAX_MEMORY_SIZE."""
    try:
        return request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("The request body is too large.") from None


def _json_body(request: HttpRequest, *, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object. An empty body is {} when `optional`."""
    raw = raw_body(request)
    if optional and not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers bad UTF-8, bad JSON and integers too long to convert.
        raise InvalidRequest("The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _visible_event(request: HttpRequest, event_id: int) -> Event:
    """The event, unless it does not exist or is a draft the user may not see (404 alike,
    so a draft's existence does not leak)."""
    event = Event.objects.visible_to(request.user).filter(pk=event_id).first()
    if event is None:
        raise NotFound("No such event.")
    return event


def _customer(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # api_view let only signed-in users through
    return request.user


def _seats_field(body: dict[str, Any]) -> list[int] | None:
    seats = body.get("seats")
    return None if seats is None else clean_seat_ids(seats)


def _once(
    request: HttpRequest,
    limit: Callable[[], ratelimits.Decision],
    write: Callable[[], HttpResponse],
    write_once: Callable[[idempotency.Claim], HttpResponse] | None = None,
) -> HttpResponse:
    """Counts the request against `limit` and runs the write; or, with an Idempotency-Key
    header, answers it once per key: a retry gets the first answer again, refusals included
    (see seats.idempotency), without being counted against `limit`.

    `write_once`, if given, is the write storing its own answer under the key in the
    statement that writes (a booking on PostgreSQL), which also replays an answer already
    stored: tried first, with no read of the key before it, it leaves only a refusal, which
    it does not store, to the transaction of `idempotency.respond_once`.

    Raises RateLimited if the request would run but is over the limit."""
    key = idempotency.key_from(request)
    if key is None:
        ratelimits.enforce(limit())
        return write()
    customer_id = _customer(request).pk
    fingerprint = idempotency.fingerprint(request, raw_body(request))
    if write_once is None:
        stored = idempotency.stored_answer(
            customer_id=customer_id, key=key, fingerprint=fingerprint
        )
        if stored is not None:
            return stored
        ratelimits.enforce(limit())
    else:
        claim = idempotency.Claim(customer_id=customer_id, key=key, fingerprint=fingerprint)
        answered = _write_once(write_once, claim, limit)
        if answered is not None:
            return answered

    def respond() -> HttpResponse:
        try:
            return write()
        except Busy:
            raise  # not an answer to keep: the retry should try again
        except BookingError as exc:
            return error_response(exc)

    return idempotency.respond_once(
        customer_id=customer_id, key=key, fingerprint=fingerprint, respond=respond
    )


def _write_once(
    write_once: Callable[[idempotency.Claim], HttpResponse],
    claim: idempotency.Claim,
    limit: Callable[[], ratelimits.Decision],
) -> HttpResponse | None:
    """`_once` for a write that stores its own answer: with no read of the key first (the
    statement replays a stored answer itself), the request is counted before it writes and
    given back if it was a retry; over the limit, a stored answer is still replayed. None
    when the write was refused with nothing written, for `respond_once` to answer and store."""
    decision = limit()
    if not decision.allowed:
        stored = idempotency.stored_answer(
            customer_id=claim.customer_id, key=claim.key, fingerprint=claim.fingerprint
        )
        if stored is not None:
            ratelimits.give_back(decision)
            return stored
        ratelimits.enforce(decision)
    try:
        return write_once(claim)
    except idempotency.Replayed as replayed:
        ratelimits.give_back(decision)
        return replayed.response
    except idempotency.IdempotencyMismatch:
        ratelimits.give_back(decision)
        raise  # not this request's to answer
    except Busy:
        raise  # not kept: the retry should try again
    except BookingError:
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# Sets the csrftoken cookie, so a client that starts with the map can then write.
@ensure_csrf_cookie
@api_view("GET", "HEAD", login_required=False)
def seat_map(request: HttpRequest, event_id: int) -> JsonResponse:
    event = _visible_event(request, event_id)
    current = selectors.seat_map(event_id=event.pk, now=timezone.now())
    seats = [
        {
            "id": seat["id"],
            "label": seat_code(seat["section"], seat["row"], seat["number"]),
            "section": seat["section"],
            "row": seat["row"],
            "number": seat["number"],
            "price": seat["price"],
            "state": seat["state"],
        }
        for seat in current.seats
    ]
    return JsonResponse({"event": event.pk, "version": current.version, "seats": seats})


@api_view("POST")
def create_hold(request: HttpRequest, event_id: int) -> HttpResponse:
    customer = _customer(request)

    def limit() -> ratelimits.Decision:
        return ratelimits.seat_action(customer_id=customer.pk, event_id=event_id)

    def hold_seats() -> HttpResponse:
        body = _json_body(request)
        event = _visible_event(request, event_id)
        found: dict[str, object] = {}
        if "best_available" in body:
            # {"best_available": {"count": N, "section": ..., "max_price": ..., "split": ...}}:
            # the service picks the seats, and the answer says which groups it held.
            if "seats" in body:
                raise InvalidRequest('Send either "seats" or "best_available", not both.')
            wanted = services.parse_best_available(body["best_available"])
            held = services.hold_best_available_groups(
                customer=customer,
                event_id=event.pk,
                count=wanted.count,
                section=wanted.section,
                max_price=wanted.max_price,
                split=wanted.split,
            )
            hold = held.hold
            found = {"groups": held.groups, "together": held.together}
        else:
            hold = services.hold_seats(
                customer=customer, event_id=event.pk, seat_ids=clean_seat_ids(body.get("seats"))
            )
        return JsonResponse(
            {
                "hold": hold.pk,
                "seats": sorted(hold.seats.values_list("pk", flat=True)),
                "expires_at": _iso(hold.expires_at),
                **found,
            },
            status=201,
        )

    return _once(request, limit, hold_seats)


@dataclass(frozen=True)
class BookingOrder:
    """What a booking request asks for: seats by id, or every seat of a hold."""

    seat_ids: list[int] | None
    hold_id: int | None


def booking_order(request: HttpRequest) -> BookingOrder:
    """The booking request's body, read: `{"seats": [ids]}` or `{"hold": id}`.

    Raises InvalidRequest or PayloadTooLarge."""
    body = _json_body(request)
    hold_id = None
    if body.get("hold") is not None:
        hold_id = parse_id(body["hold"])
        if hold_id is None or isinstance(body["hold"], str):
            raise InvalidRequest('"hold" must be a hold id.')
    return BookingOrder(seat_ids=_seats_field(body), hold_id=hold_id)


def booking_answer(booking: Booking) -> HttpResponse:
    """The 201 answer to a booking request that made `booking`."""
    if booking.answer is not None:
        return idempotency.answer(booking.answer, 201)
    assert booking.booked_seat_ids is not None  # set by book_seats
    return JsonResponse(
        {
            "booking": booking.pk,
            "seats": sorted(booking.booked_seat_ids),
            "total": str(booking.total),
        },
        status=201,
    )


@api_view("POST")
def create_booking(request: HttpRequest, event_id: int) -> HttpResponse:
    """POST /api/events/<id>/bookings. With PostgreSQL and Redis most of these are answered
    on the event loop instead (booking_site.loop_bookings), with this view's rules and answers."""
    customer = _customer(request)

    def limit() -> ratelimits.Decision:
        return ratelimits.booking(customer_id=customer.pk)

    def book_seats(once: idempotency.Claim | None = None) -> HttpResponse:
        order = booking_order(request)
        # The service reads the event itself (a draft the customer may not see is 404, as
        # in _visible_event): on PostgreSQL the whole booking is one statement.
        booking = services.book_seats(
            customer=customer,
            event_id=event_id,
            seat_ids=order.seat_ids,
            hold_id=order.hold_id,
            hide_drafts=not customer.is_staff,
            once=once,
        )
        return booking_answer(booking)

    in_one_statement = services.bookings_in_database()
    return _once(request, limit, book_seats, write_once=book_seats if in_one_statement else None)


@api_view("DELETE")
def release_hold(request: HttpRequest, hold_id: int) -> JsonResponse:
    customer = _customer(request)
    # Counted on the hold's event, with the customer's holds and clicks there.
    event_id = Hold.objects.filter(pk=hold_id).values_list("event_id", flat=True).first()
    ratelimits.enforce(ratelimits.seat_action(customer_id=customer.pk, event_id=event_id or 0))
    body = _json_body(request, optional=True)
    hold = services.release_hold(hold_id=hold_id, actor=customer, seat_ids=_seats_field(body))
    return JsonResponse(
        {
            "hold": hold.pk,
            "seats": sorted(hold.seats.values_list("pk", flat=True)),
            "ended": hold.ended_at is not None,
        }
    )


@api_view("DELETE")
def cancel_booking(request: HttpRequest, booking_id: int) -> JsonResponse:
    booking = services.cancel_booking(booking_id=booking_id, actor=_customer(request))
    return JsonResponse({"booking": booking.pk, "cancelled_at": _iso(booking.cancelled_at)})


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other /api/ address (including non-numeric ids)."""
    return error_response(NotFound("No such API endpoint."))


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON 403 for the API, Django's own page everywhere else."""
    if request.path_info.startswith("/api/"):
        return JsonResponse(
            {
                "error": "CSRF check failed: send the csrftoken cookie's value in the "
                "X-CSRFToken header.",
                "code": "csrf_failed",
                "reason": reason,
            },
            status=403,
        )
    return csrf.csrf_failure(request, reason=reason)
