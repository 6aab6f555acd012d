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
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from seats import services
from seats.admin import seat_changes_url
from seats.errors import BookingError, InvalidRequest
from seats.fragments import price_tiers, seat_map_html, tier_style
from seats.models import Seat, SeatFeature, SeatState, active_hold, free_seat
from seats.selectors import public_seats
from seats.services import layout_import
from seats.services.seat_maps import MAX_SEATS_PER_EVENT, SectionSpec, parse_row_list

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


def _number_input(step: str = "any") -> forms.NumberInput:
    return forms.NumberInput(attrs={"step": step, "style": "width: 5em"})


class SectionForm(forms.Form):
    """One section of a generated seat map: its size and price, where it sits on the plan
    (seat_maps.SectionSpec), and which rows have wheelchair spaces or a restricted view."""

    name = forms.CharField(max_length=40, widget=forms.TextInput(attrs={"size": 12}))
    rows = forms.IntegerField(min_value=1, max_value=200, widget=_number_input("1"))
    seats_per_row = forms.IntegerField(
        min_value=1, max_value=500, label="Seats per row", widget=_number_input("1")
    )
    price = forms.DecimalField(
        min_value=0, max_digits=8, decimal_places=2, widget=_number_input("0.01")
    )
    x = forms.FloatField(
        required=False,
        min_value=-10_000,
        max_value=10_000,
        widget=_number_input(),
        help_text="Across, in seat widths from the stage's centre; blank: 0.",
    )
    y = forms.FloatField(
        required=False,
        min_value=-10_000,
        max_value=10_000,
        widget=_number_input(),
        help_text="Seat widths back from the stage; blank: behind the section above.",
    )
    angle = forms.FloatField(
        required=False,
        min_value=-180,
        max_value=180,
        widget=_number_input(),
        help_text="Degrees; positive turns a left-hand section to face the stage.",
    )
    curve = forms.FloatField(
        required=False,
        min_value=0,
        max_value=180,
        widget=_number_input(),
        help_text="Degrees of arc the front row spans; blank or 0: straight rows.",
    )
    wheelchair_rows = forms.CharField(
        required=False,
        max_length=200,
        label="Wheelchair rows",
        widget=forms.TextInput(attrs={"size": 6}),
        help_text="E.g. “A” or “A, K”: a wheelchair space at each end, a companion seat beside it.",
    )
    restricted_rows = forms.CharField(
        required=False,
        max_length=200,
        label="Restricted-view rows",
        widget=forms.TextInput(attrs={"size": 6}),
        help_text="E.g. “P-R”.",
    )

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("A section needs a name.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        rows = data.get("rows")
        for field in ("wheelchair_rows", "restricted_rows"):
            if rows is None or field not in data:
                continue
            try:
                data[field] = parse_row_list(data[field], rows=rows)
            except InvalidRequest as exc:
                self.add_error(field, exc.message)
        return data

    def section(self) -> SectionSpec:
        data = self.cleaned_data
        return SectionSpec(
            name=data["name"],
            rows=data["rows"],
            seats_per_row=data["seats_per_row"],
            price=data["price"],
            x=data["x"] or 0.0,
            y=data["y"],
            angle=data["angle"] or 0.0,
            curve=data["curve"] or 0.0,
            wheelchair_rows=data["wheelchair_rows"],
            restricted_rows=data["restricted_rows"],
        )


class BaseSectionFormSet(forms.BaseFormSet[SectionForm]):
    default_error_messages = {
        **forms.BaseFormSet.default_error_messages,
        "too_few_forms": "Add at least one section: fill in its name, rows, seats per row "
        "and price.",
    }

    def clean(self) -> None:
        if any(self.errors):
            return
        names = [f.cleaned_data["name"] for f in self.forms if f.cleaned_data]
        if len(names) != len(set(names)):
            raise forms.ValidationError("Each section name may be used once.")


SectionFormSet = formset_factory(
    SectionForm, formset=BaseSectionFormSet, extra=3, min_num=1, validate_min=True
)

MAX_LAYOUT_BYTES = 8 * 1024 * 1024  # a 50,000-seat CSV is about 3 MB


class LayoutImportForm(forms.Form):
    layout = forms.FileField(
        label="Layout file",
        help_text="CSV or JSON, one seat per line or object: "
        "section, row, number, x, y, price, attributes.",
    )

    def clean_layout(self) -> tuple[str, str]:
        """The file's name and text (UTF-8)."""
        upload = self.cleaned_data["layout"]
        if upload.size is not None and upload.size > MAX_LAYOUT_BYTES:
            raise forms.ValidationError(
                f"The file is over {MAX_LAYOUT_BYTES // (1024 * 1024)} MB; "
                f"a layout has at most {MAX_SEATS_PER_EVENT:,} seats."
            )
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError(
                "The file is not UTF-8 text (save it as CSV UTF-8)."
            ) from None
        return upload.name or "", text


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    # Short headers and wrapping cells, so every column fits a 1366-px laptop screen beside
    # the admin's navigation and filter sidebars (a FK or date column never wraps).
    list_display = [
        "name",
        "venue_name",
        "starts",
        "sale",
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

    @admin.display(description="venue", ordering="venue__name")
    def venue_name(self, obj: Event) -> str:
        return obj.venue.name

    @admin.display(description="starts", ordering="starts_at")
    def starts(self, obj: Event) -> str:
        return date_format(timezone.localtime(obj.starts_at), "j M Y H:i")

    @admin.display(description="sale", ordering="sale_state")
    def sale(self, obj: Event) -> str:
        return obj.get_sale_state_display()

    @admin.display(description="map")
    def seat_map_link(self, obj: Event) -> str:
        return format_html('<a href="{}">Preview</a>', self._url("seat_map_preview", obj))

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

    # --- seat maps: generate, import, preview ---------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def view(name: str, function: Callable[[HttpRequest, int], HttpResponse]) -> URLPattern:
            return path(
                f"<int:event_id>/{name}/",
                self.admin_site.admin_view(function),
                name=f"events_event_{name.replace('-', '_')}",
            )

        return [
            view("generate-seats", self.generate_seats_view),
            view("import-layout", self.import_layout_view),
            view("seat-map-preview", self.preview_view),
            *super().get_urls(),
        ]

    def _url(self, name: str, event: Event) -> str:
        return reverse(f"{self.admin_site.name}:events_event_{name}", args=[event.pk])

    def _generate_url(self, event: Event) -> str:
        return self._url("generate_seats", event)

    def _event_for_change(self, request: HttpRequest, event_id: int) -> Event:
        event = get_object_or_404(self.get_queryset(request), pk=event_id)
        if not self.has_change_permission(request, event):
            raise PermissionDenied
        return event

    def _seat_map_context(self, request: HttpRequest, event: Event, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": f"{title}: {event}",
            "opts": self.opts,
            "original": event,
            "event": event,
            "is_draft": event.sale_state == Event.SaleState.DRAFT,
            "sections": section_summary(event),
            "links": {
                "generate": self._url("generate_seats", event),
                "import": self._url("import_layout", event),
                "preview": self._url("seat_map_preview", event),
            },
            "has_view_permission": self.has_view_permission(request, event),
        }

    def generate_seats_view(self, request: HttpRequest, event_id: int) -> HttpResponse:
        """Adds generated sections to a draft event; refuses (a form error, 4xx) otherwise."""
        event = self._event_for_change(request, event_id)
        status = 200
        if request.method == "POST":
            formset = SectionFormSet(request.POST)
            if formset.is_valid():
                sections = [f.section() for f in formset.forms if f.cleaned_data]
                try:
                    created = services.generate_seat_map(event_id=event.pk, sections=sections)
                except BookingError as exc:
                    formset.non_form_errors().append(exc.message)
                    self.message_user(request, f"No seats created: {exc.message}", messages.ERROR)
                    status = exc.status
                else:
                    self.message_user(
                        request,
                        f"Created {created} seats in {', '.join(s.name for s in sections)}. "
                        "This is the seat map customers will see.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(self._url("seat_map_preview", event))
            else:
                status = 400
        else:
            formset = SectionFormSet()
        context = {
            **self._seat_map_context(request, event, "Generate seat map"),
            "formset": formset,
        }
        return TemplateResponse(
            request, "admin/events/event/generate_seats.html", context, status=status
        )

    def import_layout_view(self, request: HttpRequest, event_id: int) -> HttpResponse:
        """Adds the seats of an uploaded CSV/JSON layout to a draft event, all or none; a
        layout with mistakes is sent back (400) with every bad line named."""
        event = self._event_for_change(request, event_id)
        status = 200
        problems: list[tuple[int, str]] = []
        if request.method == "POST":
            form = LayoutImportForm(request.POST, request.FILES)
            if form.is_valid():
                filename, text = form.cleaned_data["layout"]
                try:
                    seats = layout_import.parse_layout(
                        text, format=layout_import.guess_format(filename, text)
                    )
                    created = layout_import.import_layout(event_id=event.pk, seats=seats)
                except layout_import.LayoutError as exc:
                    problems = exc.problems
                    form.add_error(
                        None, f"Nothing was imported: {len(problems)} problem(s) in the file."
                    )
                    status = exc.status
                except BookingError as exc:
                    form.add_error(None, f"Nothing was imported: {exc.message}")
                    status = exc.status
                else:
                    self.message_user(
                        request,
                        f"Imported {created} seats from {filename or 'the file'}. "
                        "This is the seat map customers will see.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(self._url("seat_map_preview", event))
            else:
                status = 400
        else:
            form = LayoutImportForm()
        context = {
            **self._seat_map_context(request, event, "Import seat layout"),
            "form": form,
            "problems": problems,
            "max_seats": MAX_SEATS_PER_EVENT,
        }
        return TemplateResponse(
            request, "admin/events/event/import_layout.html", context, status=status
        )

    def preview_view(self, request: HttpRequest, event_id: int) -> HttpResponse:
        """The seat map as customers see it (drafts included), with a summary per section."""
        event = get_object_or_404(self.get_queryset(request), pk=event_id)
        if not self.has_view_permission(request, event):
            raise PermissionDenied
        seats = public_seats(event_id=event.pk, now=timezone.now())
        tiers = price_tiers(seats)
        features = Seat.objects.filter(event=event).aggregate(
            **{code: Count("id", filter=Q(**{code: True})) for code in SeatFeature.values}
        )
        context = {
            **self._seat_map_context(request, event, "Seat map preview"),
            "seat_map_html": mark_safe(seat_map_html(seats)),
            "tiers": tiers,
            "tier_style": mark_safe(tier_style(tiers)),
            "features": [
                {"code": code, "label": label, "seats": features[code]}
                for code, label in SeatFeature.choices
                if features[code]
            ],
            "total_seats": len(seats),
            "change_url": self._url("change", event),
        }
        return TemplateResponse(request, "admin/events/event/seat_map_preview.html", context)

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
            context["generate_seats_url"] = self._url("generate_seats", obj)
            context["import_layout_url"] = self._url("import_layout", obj)
            context["preview_url"] = self._url("seat_map_preview", obj)
            context["is_draft"] = obj.sale_state == Event.SaleState.DRAFT
        return super().render_change_form(request, context, add, change, form_url, obj)


def section_summary(event: Event) -> list[dict[str, Any]]:
    """Per section, in plan order (nearest the stage first): seats, rows, price range and
    how many seats are wheelchair spaces, companion seats or restricted view."""
    flagged = {code: Count("id", filter=Q(**{code: True})) for code in SeatFeature.values}
    rows = (
        Seat.objects.filter(event=event)
        .values("section")
        .annotate(
            seats=Count("id"),
            rows=Count("row_label", distinct=True),
            min_price=Min("price"),
            max_price=Max("price"),
            front=Min("y"),
            **flagged,
        )
        .order_by("front", "section")
    )
    return [dict(row) for row in rows]
