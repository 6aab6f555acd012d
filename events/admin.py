"""Staff setup of venues and events: seat maps, sales, and what is sold at a glance.

Seat states are never written here: seat maps and sales go through seats.services.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, Min, Q, QuerySet
from django.forms import formset_factory
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from seats import services
from seats.admin import seat_changes_url
from seats.errors import BookingError
from seats.models import Seat, SeatState, active_hold, free_seat

from .models import Event, Venue

OCCUPANCY_STATES = ("available", "held", "sold", "blocked")


def annotate_occupancy(queryset: QuerySet[Event], *, now: datetime) -> QuerySet[Event]:
    """Adds n_available / n_held / n_sold / n_blocked to each event, in the same query.

    Counts what viewers see: a seat under an expired hold the sweeper has not released yet
    is available, not held.
    """
    held = Q(seats__state=SeatState.HELD) & active_hold(prefix="seats__hold__", now=now)
    return queryset.annotate(
        n_available=Count("seats", filter=free_seat(prefix="seats__", now=now)),
        n_held=Count("seats", filter=held),
        n_sold=Count("seats", filter=Q(seats__state=SeatState.SOLD)),
        n_blocked=Count("seats", filter=Q(seats__state=SeatState.BLOCKED)),
    )


def _occupancy_column(state: str) -> Callable[[Event], str]:
    @admin.display(description=state, ordering=f"n_{state}")
    def column(obj: Event) -> str:
        return str(getattr(obj, f"n_{state}"))

    column.__name__ = f"occupancy_{state}"
    return column


@admin.register(Venue)
class VenueAdmin(admin.ModelAdmin[Venue]):
    list_display = ["name", "city", "address"]
    search_fields = ["name", "city"]


class SectionForm(forms.Form):
    name = forms.CharField(max_length=40)
    rows = forms.IntegerField(min_value=1, max_value=200)
    seats_per_row = forms.IntegerField(min_value=1, max_value=500, label="Seats per row")
    price = forms.DecimalField(min_value=0, max_digits=8, decimal_places=2)

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("A section needs a name.")
        return name


class BaseSectionFormSet(forms.BaseFormSet[SectionForm]):
    def clean(self) -> None:
        if any(self.errors):
            return
        names = [f.cleaned_data["name"] for f in self.forms if f.cleaned_data]
        if len(names) != len(set(names)):
            raise forms.ValidationError("Each section name may be used once.")


SectionFormSet = formset_factory(
    SectionForm, formset=BaseSectionFormSet, extra=3, min_num=1, validate_min=True
)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = [
        "name",
        "venue",
        "starts_at",
        "sale_state",
        *(_occupancy_column(state) for state in OCCUPANCY_STATES),
        "seat_map_link",
    ]
    list_filter = ["sale_state", "venue"]
    list_select_related = ["venue"]
    search_fields = ["name", "venue__name"]
    date_hierarchy = "starts_at"
    actions = ["open_sales", "close_sales"]
    fields = [
        "name",
        "venue",
        "starts_at",
        "hold_duration",
        "max_seats_per_customer",
        "sale_state",
        "version",
        "occupancy",
        "seat_changes_link",
    ]
    # Sales open and close through the actions; the version belongs to seats.changes.
    readonly_fields = ["sale_state", "version", "occupancy", "seat_changes_link"]
    change_form_template = "admin/events/event/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return annotate_occupancy(super().get_queryset(request), now=timezone.now())

    @admin.display(description="Occupancy")
    def occupancy(self, obj: Event) -> str:
        if obj.pk is None or not hasattr(obj, "n_available"):
            return "No seats yet."
        return " / ".join(f"{getattr(obj, f'n_{s}')} {s}" for s in OCCUPANCY_STATES)

    @admin.display(description="Seat changes")
    def seat_changes_link(self, obj: Event) -> str:
        if obj.pk is None:
            return "—"
        return format_html('<a href="{}">History</a>', seat_changes_url(event_id=obj.pk))

    @admin.display(description="Seat map")
    def seat_map_link(self, obj: Event) -> str:
        if obj.sale_state != Event.SaleState.DRAFT:
            return "—"
        return format_html('<a href="{}">Generate seats</a>', self._generate_url(obj))

    def save_model(
        self, request: HttpRequest, obj: Event, form: forms.ModelForm[Event], change: bool
    ) -> None:
        if change:
            # Save only what the form changed: a full save would write back the version and
            # sale state read when the form was loaded, undoing any sale or seat change since.
            if form.changed_data:
                obj.save(update_fields=form.changed_data)
        else:
            super().save_model(request, obj, form, change)

    # --- actions ------------------------------------------------------------------------

    @admin.action(description="Open sales", permissions=["change"])
    def open_sales(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        self._set_sale_state(request, queryset, Event.SaleState.ON_SALE)

    @admin.action(description="Close sales", permissions=["change"])
    def close_sales(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        self._set_sale_state(request, queryset, Event.SaleState.CLOSED)

    def _set_sale_state(
        self, request: HttpRequest, queryset: QuerySet[Event], sale_state: str
    ) -> None:
        names = []
        for event_id, name in queryset.values_list("pk", "name"):
            try:
                services.set_sale_state(event_id=event_id, sale_state=sale_state)
            except BookingError as exc:
                self.message_user(request, f"{name}: {exc.message}", messages.ERROR)
            else:
                names.append(name)
        if names:
            label = Event.SaleState(sale_state).label.lower()
            self.message_user(request, f"Now {label}: {', '.join(names)}.", messages.SUCCESS)

    # --- seat map generation --------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.generate_seats_view)
        return [
            path("<int:event_id>/generate-seats/", view, name="events_event_generate_seats"),
            *super().get_urls(),
        ]

    def _generate_url(self, event: Event) -> str:
        return reverse(f"{self.admin_site.name}:events_event_generate_seats", args=[event.pk])

    def generate_seats_view(self, request: HttpRequest, event_id: int) -> HttpResponse:
        """Adds sections of seats to a draft event; refuses (with a message) otherwise."""
        event = get_object_or_404(self.get_queryset(request), pk=event_id)
        if not self.has_change_permission(request, event):
            raise PermissionDenied
        status = 200
        if request.method == "POST":
            formset = SectionFormSet(request.POST)
            if formset.is_valid():
                sections = [
                    services.SectionSpec(
                        name=f.cleaned_data["name"],
                        rows=f.cleaned_data["rows"],
                        seats_per_row=f.cleaned_data["seats_per_row"],
                        price=f.cleaned_data["price"],
                    )
                    for f in formset.forms
                    if f.cleaned_data
                ]
                try:
                    created = services.generate_seat_map(event_id=event.pk, sections=sections)
                except BookingError as exc:
                    formset.non_form_errors().append(exc.message)
                    self.message_user(request, f"No seats created: {exc.message}", messages.ERROR)
                    status = exc.status
                else:
                    self.message_user(
                        request,
                        f"Created {created} seats in {', '.join(s.name for s in sections)}.",
                        messages.SUCCESS,
                    )
                    change_url = reverse(
                        f"{self.admin_site.name}:events_event_change", args=[event.pk]
                    )
                    return HttpResponseRedirect(change_url)
            else:
                status = 400
        else:
            formset = SectionFormSet()
        existing = (
            Seat.objects.filter(event=event)
            .values("section")
            .annotate(
                seats=Count("id"),
                rows=Count("row_label", distinct=True),
                min_price=Min("price"),
                max_price=Max("price"),
            )
            .order_by("section")
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Generate seat map: {event}",
            "opts": self.opts,
            "original": event,
            "event": event,
            "is_draft": event.sale_state == Event.SaleState.DRAFT,
            "formset": formset,
            "existing_sections": list(existing),
            "has_view_permission": self.has_view_permission(request, event),
        }
        return TemplateResponse(
            request, "admin/events/event/generate_seats.html", context, status=status
        )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Event | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk:
            context["generate_seats_url"] = self._generate_url(obj)
            context["is_draft"] = obj.sale_state == Event.SaleState.DRAFT
        return super().render_change_form(request, context, add, change, form_url, obj)
