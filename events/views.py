"""The customer's way in: the list of events and an event's live seat-map page."""

from django.conf import settings
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from seats.models import free_seat
from seats.pages import render_seat_map_page

from .models import Event


def event_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    events = (
        Event.objects.visible_to(request.user)
        .select_related("venue")
        .filter(starts_at__gte=now)
        .annotate(
            min_price=Min("seats__price"),
            max_price=Max("seats__price"),
            seats_total=Count("seats"),
            seats_left=Count("seats", filter=free_seat(prefix="seats__", now=now)),
        )
    )
    on_sale = [e for e in events if e.is_on_sale]
    others = [e for e in events if not e.is_on_sale]
    context = {"on_sale": on_sale, "others": others, "currency": settings.BOOKING_CURRENCY_SYMBOL}
    return render(request, "events/event_list.html", context)


def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    event = get_object_or_404(
        Event.objects.visible_to(request.user).select_related("venue"), pk=event_id
    )
    return render_seat_map_page(request, event)
