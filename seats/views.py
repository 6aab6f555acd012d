"""The customer's seat actions: pick/unpick a seat, release, check out, and their bookings.

Views parse the request, call one service, and render. With htmx a seat action answers with
out-of-band fragments only (the changed seats, the hold panel, the #my-seats style, a
message); without JavaScript the same forms post normally and get a redirect, or the page
with the error and a 4xx status. A BookingError never becomes a 500, and a service that
raised changed nothing. Seat actions and checkouts are rate-limited per customer
(seats.ratelimits): past the limit, 429 and nothing is done.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from events.models import Event

from . import ratelimits, services
from .changes import event_counts
from .errors import BookingError, InvalidRequest, SaleNotOpen
from .fragments import counts_html, my_seats_style, seat_html
from .models import Booking, Seat, seat_place
from .pages import (
    count_words,
    held_message,
    hold_context,
    remember_seat_picked_signed_out,
    render_seat_map_page,
)
from .parsing import MAX_SEATS_PER_REQUEST, parse_id
from .selectors import open_hold, public_seats


class HtmxHttpRequest(HttpRequest):
    """The request as django-htmx's middleware leaves it (its documented typing pattern)."""

    htmx: HtmxDetails


def _event(request: HttpRequest, event_id: int) -> Event:
    """The event, if this visitor may see it (drafts: staff only). Raises Http404."""
    return get_object_or_404(Event.objects.visible_to(request.user), pk=event_id)


def _customer(request: HttpRequest) -> User:
    """The signed-in customer; call after checking request.user.is_authenticated."""
    assert isinstance(request.user, User)
    return request.user


def _parse(raw: object, what: str) -> int:
    value = parse_id(raw)
    if value is None:
        raise InvalidRequest(f"Choose a {what}." if not raw else f"That is not a valid {what}.")
    return value


def _oob_response(
    request: HtmxHttpRequest,
    event: Event,
    *,
    now: datetime,
    seat_ids: Iterable[int] = (),
    message: str = "",
    level: str = "success",
    status: int = 200,
) -> HttpResponse:
    """The htmx answer to a seat action: out-of-band fragments, swapped by id.

    Its X-Seat-Version header is the event version read before the seats: a page already
    past it (a newer change came over the WebSocket first) asks for a resync instead of
    keeping these older seat states (see live.js).
    """
    seat_ids = list(seat_ids)
    event_now = Event.objects.get(pk=event.pk)
    parts = [
        seat_html(seat, oob=True)
        for seat in (
            public_seats(event_id=event.pk, now=now, seat_ids=seat_ids) if seat_ids else []
        )
    ]
    context = {"event": event, "oob": True, "now": now, **hold_context(request.user, event, now)}
    parts.append(render_to_string("seats/_hold_panel.html", context, request=request))
    parts.append(my_seats_style((s.pk for s in context["held_seats"]), oob=True))
    if seat_ids:
        parts.append(counts_html(event_counts(event_now), oob=True))
    # The message names these seats: the page drops it once one of them changes (site.js).
    toast = {"message": message, "level": level, "oob": True, "seats": seat_ids}
    parts.append(render_to_string("seats/_toasts.html", toast))
    response = HttpResponse("".join(parts), status=status)
    response["X-Seat-Version"] = str(event_now.version)
    return response


def _fail(
    request: HtmxHttpRequest, event: Event, error: BookingError, now: datetime
) -> HttpResponse:
    """Answers a refused action: a message, the right status, nothing changed."""
    if request.htmx:
        return _oob_response(
            request,
            event,
            now=now,
            seat_ids=error.seats,
            message=error.message,
            level="error",
            status=error.status,
        )
    # The page's sale banner already says sales are not open: one message, not two.
    said = isinstance(error, SaleNotOpen) and not Event.objects.get(pk=event.pk).is_on_sale
    return render_seat_map_page(
        request, event, status=error.status, error="" if said else error.message
    )


def _done(
    request: HtmxHttpRequest, event: Event, *, now: datetime, seat_ids: list[int], message: str
) -> HttpResponse:
    if request.htmx:
        return _oob_response(request, event, now=now, seat_ids=seat_ids, message=message)
    messages.success(request, message)
    return redirect("event-detail", event.pk)


def _rate_limited(
    request: HtmxHttpRequest, event: Event, decision: ratelimits.Decision
) -> HttpResponse:
    """429 with Retry-After: a message in #toasts with htmx, else a plain page. Renders no
    seats, so a flood of refused clicks costs next to nothing."""
    if not request.htmx:
        return ratelimits.too_many_requests_page(decision, back=event.get_absolute_url())
    message = ratelimits.RateLimited(decision.retry_after).message
    response = HttpResponse(
        render_to_string("seats/_toasts.html", {"message": message, "level": "error", "oob": True}),
        status=429,
    )
    response["Retry-After"] = str(decision.retry_after)
    return response


def _require_login(request: HtmxHttpRequest, event: Event) -> HttpResponse:
    """Sends a signed-out visitor to sign in and back to the page. A seat they clicked is
    remembered and held when they have signed in (pages.hold_seat_picked_signed_out)."""
    seat_id = parse_id(request.POST.get("seat"))
    if seat_id is not None and Seat.objects.filter(pk=seat_id, event_id=event.pk).exists():
        remember_seat_picked_signed_out(request, event=event, seat_id=seat_id)
    page = event.get_absolute_url()
    if request.htmx:
        return HttpResponseClientRedirect(f"{reverse(settings.LOGIN_URL)}?next={page}")
    return redirect_to_login(page)


def _refuse(
    request: HtmxHttpRequest, event: Event, *, limit: Literal["seat_action", "booking"]
) -> HttpResponse | None:
    """The answer to a page action that may not run: a signed-out visitor is sent to sign in,
    a customer over `limit` gets 429. None when the action may go on."""
    if not request.user.is_authenticated:
        return _require_login(request, event)
    if limit == "booking":
        decision = ratelimits.booking(customer_id=request.user.pk)
    else:
        decision = ratelimits.seat_action(customer_id=request.user.pk, event_id=event.pk)
    if not decision.allowed:
        return _rate_limited(request, event, decision)
    return None


@require_POST
def seat_toggle(request: HtmxHttpRequest, event_id: int) -> HttpResponse:
    """Holds an available seat, or releases a seat of the customer's own hold."""
    event = _event(request, event_id)
    refused = _refuse(request, event, limit="seat_action")
    if refused is not None:
        return refused
    now = timezone.now()
    try:
        seat_id = _parse(request.POST.get("seat"), "seat")
        toggled = services.toggle_seat(
            customer=_customer(request), event_id=event.pk, seat_id=seat_id
        )
    except BookingError as error:
        return _fail(request, event, error, now)
    now = timezone.now()
    if not toggled.held:
        message = f"Released {toggled.seat.place}."
    else:
        message = held_message(toggled.seat.place, toggled.hold.expires_at - now)
    return _done(request, event, now=now, seat_ids=[seat_id], message=message)


def _seats_in_words(seats: list[Seat]) -> str:
    """Seats in words: "Section A, row B, seats 4-6" (with an en dash) for seats side by side
    in one row, in order; else each place."""
    if len(seats) == 1:
        return seat_place(seats[0].section, seats[0].row_label, seats[0].number)
    first, last = seats[0], seats[-1]
    numbers = [s.number for s in seats]
    if {(s.section, s.row_label) for s in seats} == {(first.section, first.row_label)} and (
        numbers == list(range(first.number, first.number + len(seats)))
    ):
        return f"Section {first.section}, row {first.row_label}, seats {first.number}–{last.number}"
    return "; ".join(seat_place(s.section, s.row_label, s.number) for s in seats)


@require_POST
def seat_find(request: HtmxHttpRequest, event_id: int) -> HttpResponse:
    """Find N seats: holds the best block of `count` free seats side by side, in `section`
    and up to `max_price` each when given, beside the customer's seats already held; with
    `split` ticked, seats in a few groups side by side in one section when no block is free
    (services.hold_best_available_groups)."""
    event = _event(request, event_id)
    refused = _refuse(request, event, limit="seat_action")
    if refused is not None:
        return refused
    now = timezone.now()
    try:
        count = parse_id(request.POST.get("count"))
        if count is None:
            raise InvalidRequest("Choose how many seats you want.")
        section = request.POST.get("section", "").strip() or None
        raw_price = request.POST.get("max_price", "").strip() or None
        try:  # the API's rule for an amount
            asked = services.parse_best_available({"count": 1, "max_price": raw_price})
        except InvalidRequest:
            raise InvalidRequest("Choose a top price from the list.") from None
        held = services.hold_best_available_groups(
            customer=_customer(request),
            event_id=event.pk,
            count=count,
            section=section,
            max_price=asked.max_price,
            split=request.POST.get("split") == "1",
        )
    except BookingError as error:
        return _fail(request, event, error, now)
    now = timezone.now()
    by_id = {s.pk: s for s in held.hold.seats.all()}
    groups = [[by_id[pk] for pk in group] for group in held.groups]
    found = [seat for group in groups for seat in group]
    places = "; ".join(_seats_in_words(group) for group in groups)
    message = held_message(places, held.hold.expires_at - now, several=len(found) > 1)
    if held.together and len(found) > 1:
        message = f"Found {count_words(len(found), 'seat')} together: {message}"
    elif not held.together:
        message = (
            f"No {count_words(len(found), 'seat')} are free side by side, so here are "
            f"{len(groups)} groups: {message}"
        )
    return _done(request, event, now=now, seat_ids=[s.pk for s in found], message=message)


@require_GET
def hold_panel(request: HtmxHttpRequest, event_id: int) -> HttpResponse:
    """Re-renders the hold panel; the countdown asks for it when the hold runs out.

    `seats` (comma-separated ids the panel showed) are re-sent with their current state, so
    seats freed by the expiry look free even where live updates are not connected.
    """
    event = _event(request, event_id)
    if not request.htmx:
        return redirect("event-detail", event.pk)
    now = timezone.now()
    try:
        raw = [part for part in request.GET.get("seats", "").split(",") if part.strip()]
        seat_ids = [_parse(part, "seat") for part in raw[:MAX_SEATS_PER_REQUEST]]
    except InvalidRequest as error:
        return _fail(request, event, error, now)
    message = ""
    if seat_ids and open_hold(customer=request.user, event_id=event.pk, now=now) is None:
        message = "Your hold ran out, so those seats were released."
    return _oob_response(request, event, now=now, seat_ids=seat_ids, message=message, level="info")


@require_POST
def hold_release(request: HtmxHttpRequest, event_id: int) -> HttpResponse:
    """Releases every seat of the customer's hold for the event."""
    event = _event(request, event_id)
    refused = _refuse(request, event, limit="seat_action")
    if refused is not None:
        return refused
    now = timezone.now()
    hold = open_hold(customer=request.user, event_id=event.pk, now=now)
    if hold is None:
        return _fail(request, event, InvalidRequest("You have no seats on hold."), now)
    seat_ids = list(hold.seats.values_list("pk", flat=True))
    try:
        services.release_hold(hold_id=hold.pk, actor=_customer(request))
    except BookingError as error:
        return _fail(request, event, error, now)
    return _done(request, event, now=now, seat_ids=seat_ids, message="Your seats were released.")


@require_POST
def checkout(request: HtmxHttpRequest, event_id: int) -> HttpResponse:
    """Books every seat of the customer's hold, then shows the confirmation."""
    event = _event(request, event_id)
    refused = _refuse(request, event, limit="booking")
    if refused is not None:
        return refused
    now = timezone.now()
    try:
        hold_id = _parse(request.POST.get("hold"), "hold")
        booking = services.book_seats(
            customer=_customer(request), event_id=event.pk, hold_id=hold_id
        )
    except BookingError as error:
        return _fail(request, event, error, now)
    target = reverse("booking-detail", args=[booking.pk])
    if request.htmx:
        return HttpResponseClientRedirect(target)
    return redirect(target)


def _customer_booking(request: HttpRequest, booking_id: int) -> Booking:
    booking = (
        Booking.objects.select_related("event__venue", "customer").filter(pk=booking_id).first()
    )
    if booking is None or not (request.user.is_staff or booking.customer_id == request.user.pk):
        raise Http404("No such booking.")
    return booking


@login_required
@require_GET
def booking_list(request: HttpRequest) -> HttpResponse:
    bookings = (
        Booking.objects.filter(customer_id=request.user.pk)
        .select_related("event__venue")
        .prefetch_related("items__seat")
    )
    context = {"bookings": bookings, "currency": settings.BOOKING_CURRENCY_SYMBOL}
    return render(request, "seats/booking_list.html", context)


def _booking_page(
    request: HttpRequest, booking: Booking, *, error: str = "", status: int = 200
) -> HttpResponse:
    items = booking.items.select_related("seat").order_by("seat_id")
    context = {
        "booking": booking,
        "items": items,
        "error": error,
        "currency": settings.BOOKING_CURRENCY_SYMBOL,
    }
    return render(request, "seats/booking_detail.html", context, status=status)


@login_required
@require_GET
def booking_detail(request: HttpRequest, booking_id: int) -> HttpResponse:
    return _booking_page(request, _customer_booking(request, booking_id))


@login_required
@require_POST
def booking_cancel(request: HttpRequest, booking_id: int) -> HttpResponse:
    booking = _customer_booking(request, booking_id)
    try:
        services.cancel_booking(booking_id=booking.pk, actor=_customer(request))
    except BookingError as error:
        return _booking_page(request, booking, error=error.message, status=error.status)
    messages.success(request, f"Booking #{booking.pk} is cancelled and its seats are released.")
    if request.POST.get("back") == "list":
        return redirect("booking-list")
    return redirect("booking-detail", booking.pk)
