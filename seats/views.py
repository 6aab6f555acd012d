"""The customer's seat actions: pick/unpick a seat, release, check out, and their bookings.

Every write goes through seats.services. With htmx a seat action answers with out-of-band
fragments only (the changed seats, the hold panel, the #my-seats style, a message); without
JavaScript the same forms post normally and get a redirect, or the page with the error and
a 4xx status. A BookingError never becomes a 500, and a service that raised changed nothing.
"""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from events.models import Event
from events.views import render_event_page, visible_event

from . import services
from .changes import event_counts
from .errors import BookingError, InvalidRequest, SaleNotOpen, SeatsUnavailable, UnknownSeats
from .fragments import counts_html, my_seats_style, seat_html
from .models import Booking, Seat, SeatState
from .selectors import open_hold, public_seats


def hold_context(user, event: Event, now: datetime) -> dict:
    """What the hold panel shows: the customer's open hold for the event, its seats, total."""
    hold = open_hold(customer=user, event_id=event.pk, now=now)
    held_seats = list(hold.seats.order_by("pk")) if hold else []
    seconds_left = max(0, int((hold.expires_at - now).total_seconds())) if hold else 0
    return {
        "hold": hold,
        "hold_clock": f"{seconds_left // 60}:{seconds_left % 60:02d}",
        "hold_seat_ids": ",".join(str(s.pk) for s in held_seats),
        "held_seats": held_seats,
        "hold_total": sum((s.price for s in held_seats), Decimal("0")),
        "currency": settings.BOOKING_CURRENCY_SYMBOL,
    }


def _parse_id(raw: object, what: str) -> int:
    text = str(raw) if raw is not None else ""
    # Plain ASCII digits only, as the API takes: int() would also accept "٣", "+5" or " 5 ".
    if not (text.isascii() and text.isdigit()):
        raise InvalidRequest(f"Choose a {what}.")
    value = int(text)
    if value < 1 or value > 2**62:
        raise InvalidRequest(f"That is not a valid {what}.")
    return value


def _oob_response(
    request: HttpRequest,
    event: Event,
    *,
    now: datetime,
    seat_ids=(),
    message: str = "",
    level: str = "success",
    status: int = 200,
) -> HttpResponse:
    """The htmx answer to a seat action: out-of-band fragments, swapped by id.

    Its X-Seat-Version header is the event version read before the seats: a page already
    past it (a newer change came over the WebSocket first) asks for a resync instead of
    keeping these older seat states (see live.js).
    """
    event_now = Event.objects.get(pk=event.pk)
    parts = (
        [
            seat_html(seat, oob=True)
            for seat in public_seats(event_id=event.pk, now=now, seat_ids=list(seat_ids))
        ]
        if seat_ids
        else []
    )
    context = {"event": event, "oob": True, "now": now, **hold_context(request.user, event, now)}
    parts.append(render_to_string("seats/_hold_panel.html", context, request=request))
    parts.append(my_seats_style((s.pk for s in context["held_seats"]), oob=True))
    if seat_ids:
        parts.append(counts_html(event_counts(event_now), oob=True))
    parts.append(
        render_to_string("seats/_toasts.html", {"message": message, "level": level, "oob": True})
    )
    response = HttpResponse("".join(parts), status=status)
    response["X-Seat-Version"] = str(event_now.version)
    return response


def _fail(request: HttpRequest, event: Event, error: BookingError, now: datetime) -> HttpResponse:
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
    return render_event_page(request, event, status=error.status, error=error.message)


def _done(request: HttpRequest, event: Event, *, now: datetime, seat_ids, message: str):
    if request.htmx:
        return _oob_response(request, event, now=now, seat_ids=seat_ids, message=message)
    messages.success(request, message)
    return redirect("event-detail", event.pk)


def _require_login(request: HttpRequest, event: Event) -> HttpResponse:
    page = event.get_absolute_url()
    if request.htmx:
        login = f"{reverse(settings.LOGIN_URL)}?next={page}"
        return HttpResponse(status=200, headers={"HX-Redirect": login})
    return redirect_to_login(page)


def _seat_label(seat: Seat) -> str:
    return f"Section {seat.section}, row {seat.row_label}, seat {seat.number}"


@require_POST
def seat_toggle(request: HttpRequest, event_id: int) -> HttpResponse:
    """Holds an available seat, or releases a seat of the customer's own hold."""
    event = visible_event(request, event_id)
    if not request.user.is_authenticated:
        return _require_login(request, event)
    now = timezone.now()
    try:
        seat_id = _parse_id(request.POST.get("seat"), "seat")
        seat = Seat.objects.filter(pk=seat_id, event_id=event.pk).select_related("hold").first()
        if seat is None:
            raise UnknownSeats("That seat is not part of this event.")
        label = _seat_label(seat)
        hold = open_hold(customer=request.user, event_id=event.pk, now=now)
        if hold is not None and seat.hold_id == hold.pk:
            services.release_hold(hold_id=hold.pk, actor=request.user, seat_ids=[seat.pk], now=now)
            return _done(request, event, now=now, seat_ids=[seat.pk], message=f"Released {label}.")
        if not event.is_on_sale:
            sale = event.get_sale_state_display().lower()
            raise SaleNotOpen(f"Sales for {event.name} are {sale}.")
        state = public_seats(event_id=event.pk, now=now, seat_ids=[seat.pk])[0]["state"]
        if state != SeatState.AVAILABLE:
            raise SeatsUnavailable(_unavailable_message(label, state), seats=[seat.pk])
        try:
            hold = services.hold_seats(
                customer=request.user, event_id=event.pk, seat_ids=[seat.pk], now=now
            )
        except SeatsUnavailable:
            raise SeatsUnavailable(
                f"Sorry, someone else just took {label}.", seats=[seat.pk]
            ) from None
        minutes = max(1, round((hold.expires_at - now).total_seconds() / 60))
        return _done(
            request,
            event,
            now=now,
            seat_ids=[seat.pk],
            message=f"{label} is yours for the next {minutes} min.",
        )
    except BookingError as error:
        return _fail(request, event, error, now)


def _unavailable_message(label: str, state: str) -> str:
    if state == SeatState.SOLD:
        return f"{label} is already sold."
    if state == SeatState.HELD:
        return f"{label} is being held by another customer. It frees up if they don't book it."
    return f"{label} is not for sale."


@require_GET
def hold_panel(request: HttpRequest, event_id: int) -> HttpResponse:
    """Re-renders the hold panel; the countdown asks for it when the hold runs out.

    `seats` (comma-separated ids the panel showed) are re-sent with their current state, so
    seats freed by the expiry look free even where live updates are not connected.
    """
    event = visible_event(request, event_id)
    if not request.htmx:
        return redirect("event-detail", event.pk)
    now = timezone.now()
    try:
        raw = [part for part in request.GET.get("seats", "").split(",") if part.strip()]
        seat_ids = [_parse_id(part, "seat") for part in raw[: services.MAX_SEATS_PER_REQUEST]]
    except InvalidRequest as error:
        return _fail(request, event, error, now)
    message = ""
    if seat_ids and open_hold(customer=request.user, event_id=event.pk, now=now) is None:
        message = "Your hold ran out, so those seats were released."
    return _oob_response(request, event, now=now, seat_ids=seat_ids, message=message, level="info")


@require_POST
def hold_release(request: HttpRequest, event_id: int) -> HttpResponse:
    """Releases every seat of the customer's hold for the event."""
    event = visible_event(request, event_id)
    if not request.user.is_authenticated:
        return _require_login(request, event)
    now = timezone.now()
    hold = open_hold(customer=request.user, event_id=event.pk, now=now)
    if hold is None:
        return _fail(request, event, InvalidRequest("You have no seats on hold."), now)
    seat_ids = list(hold.seats.values_list("pk", flat=True))
    try:
        services.release_hold(hold_id=hold.pk, actor=request.user, now=now)
    except BookingError as error:
        return _fail(request, event, error, now)
    return _done(request, event, now=now, seat_ids=seat_ids, message="Your seats were released.")


@require_POST
def checkout(request: HttpRequest, event_id: int) -> HttpResponse:
    """Books every seat of the customer's hold, then shows the confirmation."""
    event = visible_event(request, event_id)
    if not request.user.is_authenticated:
        return _require_login(request, event)
    now = timezone.now()
    try:
        hold_id = _parse_id(request.POST.get("hold"), "hold")
        booking = services.book_seats(
            customer=request.user, event_id=event.pk, hold_id=hold_id, now=now
        )
    except BookingError as error:
        return _fail(request, event, error, now)
    target = reverse("booking-detail", args=[booking.pk])
    if request.htmx:
        return HttpResponse(status=200, headers={"HX-Redirect": target})
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
        Booking.objects.filter(customer=request.user)
        .select_related("event__venue")
        .prefetch_related("items__seat")
    )
    context = {"bookings": bookings, "currency": settings.BOOKING_CURRENCY_SYMBOL}
    return render(request, "seats/booking_list.html", context)


@login_required
@require_GET
def booking_detail(request: HttpRequest, booking_id: int) -> HttpResponse:
    booking = _customer_booking(request, booking_id)
    items = booking.items.select_related("seat").order_by("seat_id")
    context = {"booking": booking, "items": items, "currency": settings.BOOKING_CURRENCY_SYMBOL}
    return render(request, "seats/booking_detail.html", context)


@login_required
@require_POST
def booking_cancel(request: HttpRequest, booking_id: int) -> HttpResponse:
    booking = _customer_booking(request, booking_id)
    try:
        services.cancel_booking(booking_id=booking.pk, actor=request.user)
    except BookingError as error:
        items = booking.items.select_related("seat").order_by("seat_id")
        return render(
            request,
            "seats/booking_detail.html",
            {
                "booking": booking,
                "items": items,
                "error": error.message,
                "currency": settings.BOOKING_CURRENCY_SYMBOL,
            },
            status=error.status,
        )
    messages.success(request, f"Booking #{booking.pk} is cancelled and its seats are released.")
    if request.POST.get("back") == "list":
        return redirect("booking-list")
    return redirect("booking-detail", booking.pk)
