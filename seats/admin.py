"""Staff views of seats, holds, bookings and the seat-change log.

Every seat-state change made here goes through seats.services (so it is locked, versioned,
recorded and broadcast); the admin never writes Seat.state, Seat.hold or Event.version, and
the change log is read-only.
"""

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, TypedDict, TypeVar
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django_stubs_ext import WithAnnotations

from events.models import Event

from . import services
from .errors import BookingError
from .models import Booking, Hold, Seat, SeatChange
from .parsing import parse_id

MAX_LABELS_IN_MESSAGE = 10

_M = TypeVar("_M", bound=Model)


def _staff(request: HttpRequest) -> User:
    """The signed-in staff member (the admin site lets no one else in)."""
    assert isinstance(request.user, User)
    return request.user


def _seat_labels(seat_ids: Iterable[int]) -> str:
    seats = Seat.objects.filter(pk__in=list(seat_ids)[: MAX_LABELS_IN_MESSAGE + 1])
    labels = [s.label for s in seats.order_by("pk")]
    if len(labels) > MAX_LABELS_IN_MESSAGE:
        labels = [*labels[:MAX_LABELS_IN_MESSAGE], "…"]
    return ", ".join(labels)


def _error_text(exc: BookingError) -> str:
    if exc.seats:
        return f"{exc.message} ({_seat_labels(exc.seats)})"
    return exc.message


@admin.action(description="Delete selected seats (draft events only)", permissions=["delete"])
def delete_selected(
    modeladmin: admin.ModelAdmin[Seat], request: HttpRequest, queryset: QuerySet[Seat]
) -> TemplateResponse | None:
    """Django's delete-with-confirmation, refused when a seat's event is past draft.

    Keeps Django's name so the confirmation page posts back to this action.
    """
    if queryset.exclude(event__sale_state=Event.SaleState.DRAFT).exists():
        modeladmin.message_user(
            request,
            "Nothing deleted: seats can only be deleted while their event is a draft.",
            messages.ERROR,
        )
        return None
    return django_delete_selected(modeladmin, request, queryset)


@admin.register(Seat)
class SeatAdmin(admin.ModelAdmin[Seat]):
    list_display = [
        "label",
        "event",
        "section",
        "row_label",
        "number",
        "position",
        "price",
        "state",
        "wheelchair",
        "companion",
        "restricted_view",
    ]
    list_filter = ["event", "state", "section", "wheelchair", "companion", "restricted_view"]
    list_select_related = ["event"]
    search_fields = ["section", "row_label", "event__name"]
    actions = ["block_seats", "unblock_seats", delete_selected]
    fieldsets = [
        (None, {"fields": ["event", "section", "row_label", "number", "price"]}),
        (
            "Place on the venue plan",
            {
                "fields": [("x", "y")],
                "description": "In seat widths from the stage's front centre: x to the "
                "audience's right, y away from the stage.",
            },
        ),
        (
            "Shown in the legend and the seat's name",
            {"fields": ["wheelchair", "companion", "restricted_view"]},
        ),
        ("Sale", {"fields": ["state", "hold", "history"]}),
    ]
    # Seat state and hold change only through services (the actions above).
    readonly_fields = ["event", "state", "hold", "history"]
    # Once sales open, the seat map is what viewers see: nothing about a seat is edited.
    fixed_fields = [
        "event",
        "section",
        "row_label",
        "number",
        "x",
        "y",
        "price",
        "wheelchair",
        "companion",
        "restricted_view",
        "state",
        "hold",
        "history",
    ]

    @admin.display(description="x, y")
    def position(self, obj: Seat) -> str:
        return f"{obj.x:g}, {obj.y:g}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Seat | None = None) -> bool:
        if obj is not None and obj.event.sale_state != Event.SaleState.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Seat | None = None) -> list[str]:
        if obj is not None and obj.event.sale_state != Event.SaleState.DRAFT:
            return self.fixed_fields
        return self.readonly_fields

    @admin.display(description="history")
    def history(self, obj: Seat) -> str:
        if obj.pk is None:
            return "—"
        return format_html(
            '<a href="{}">This seat\'s changes</a> · <a href="{}">All changes of {}</a>',
            seat_changes_url(seat_id=obj.pk),
            seat_changes_url(event_id=obj.event_id),
            obj.event,
        )

    def save_model(
        self, request: HttpRequest, obj: Seat, form: forms.ModelForm[Seat], change: bool
    ) -> None:
        # Only the fields the form changed: a full save would write back the state and hold
        # read when the form was loaded, undoing whatever a service did since.
        if form.changed_data:
            obj.save(update_fields=form.changed_data)

    @admin.action(description="Block seats", permissions=["change"])
    def block_seats(self, request: HttpRequest, queryset: QuerySet[Seat]) -> None:
        self._change_blocking(request, queryset, services.block_seats, done="Blocked")

    @admin.action(description="Unblock seats", permissions=["change"])
    def unblock_seats(self, request: HttpRequest, queryset: QuerySet[Seat]) -> None:
        self._change_blocking(request, queryset, services.unblock_seats, done="Unblocked")

    def _change_blocking(
        self,
        request: HttpRequest,
        queryset: QuerySet[Seat],
        service: Callable[..., int],
        *,
        done: str,
    ) -> None:
        by_event: dict[int, list[int]] = defaultdict(list)
        for event_id, seat_id in queryset.order_by("event_id", "pk").values_list("event_id", "pk"):
            by_event[event_id].append(seat_id)
        try:
            # One outer transaction, so a refusal for one event undoes the others too.
            with transaction.atomic():
                changed = sum(
                    service(event_id=event_id, seat_ids=ids, actor=_staff(request))
                    for event_id, ids in by_event.items()
                )
        except BookingError as exc:
            self.message_user(request, f"Nothing changed: {_error_text(exc)}", messages.ERROR)
            return
        selected = sum(len(ids) for ids in by_event.values())
        self.message_user(
            request,
            f"{done} {changed} of {selected} selected seats"
            + ("." if changed == selected else " (the others already were)."),
            messages.SUCCESS,
        )


class ReadOnlyAdmin(admin.ModelAdmin[_M]):
    """Viewable, never added, edited or deleted by hand: only the actions change these.

    The actions need the model's real change permission (`has_act_permission`).
    """

    def has_act_permission(self, request: HttpRequest) -> bool:
        return super().has_change_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: _M | None = None) -> bool:
        return False


class _SeatCount(TypedDict):
    n_seats: int


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin[Hold]):
    list_display = [
        "id",
        "customer",
        "event",
        "seat_count",
        "created_at",
        "expires_at",
        "ended_at",
        "end_reason",
    ]
    list_filter = ["event", "end_reason"]
    list_select_related = ["customer", "event"]
    search_fields = ["customer__username", "event__name"]
    actions = ["release"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Hold]:
        holds: QuerySet[Hold] = super().get_queryset(request).annotate(n_seats=Count("seats"))
        return holds

    @admin.display(description="seats", ordering="n_seats")
    def seat_count(self, obj: "WithAnnotations[Hold, _SeatCount]") -> int:
        return obj.n_seats

    @admin.action(description="Release (puts its seats back on sale)", permissions=["act"])
    def release(self, request: HttpRequest, queryset: QuerySet[Hold]) -> None:
        counted = queryset.annotate(n=Count("seats")).order_by("pk").values_list("pk", "n")
        for hold_id, n_seats in counted:
            try:
                services.release_hold(hold_id=hold_id, actor=_staff(request))
            except BookingError as exc:
                self.message_user(request, f"Hold {hold_id}: {_error_text(exc)}", messages.ERROR)
            else:
                self.message_user(
                    request, f"Released hold {hold_id} ({n_seats} seats).", messages.SUCCESS
                )


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdmin[Booking]):
    list_display = ["id", "customer", "event", "seat_count", "total", "created_at", "status"]
    list_filter = ["event", ("cancelled_at", admin.EmptyFieldListFilter)]
    list_select_related = ["customer", "event"]
    search_fields = ["customer__username", "event__name"]
    readonly_fields = ("customer", "event", "seat_labels", "total", "created_at", "cancelled_at")
    fields = readonly_fields
    actions = ["cancel"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Booking]:
        bookings: QuerySet[Booking] = super().get_queryset(request).annotate(n_seats=Count("items"))
        return bookings

    @admin.display(description="seats", ordering="n_seats")
    def seat_count(self, obj: "WithAnnotations[Booking, _SeatCount]") -> int:
        return obj.n_seats

    @admin.display(description="status", ordering="cancelled_at")
    def status(self, obj: Booking) -> str:
        return "cancelled" if obj.is_cancelled else "active"

    @admin.display(description="seats")
    def seat_labels(self, obj: Booking) -> str:
        items = obj.items.select_related("seat").order_by("seat_id")
        return ", ".join(f"{item.seat.label} ({item.price})" for item in items)

    @admin.action(description="Cancel booking (puts its seats back on sale)", permissions=["act"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        for booking_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                services.cancel_booking(booking_id=booking_id, actor=_staff(request))
            except BookingError as exc:
                self.message_user(
                    request, f"Booking {booking_id}: {_error_text(exc)}", messages.ERROR
                )
            else:
                self.message_user(
                    request,
                    f"Cancelled booking {booking_id}; its seats are on sale again.",
                    messages.SUCCESS,
                )


# --- the seat-change log -------------------------------------------------------------------


# How staff and the API write a seat: "Stalls-A-8" (seats.models.seat_code).
_SEAT_CODE = re.compile(r"^(?P<section>.+)-(?P<row>[^-]+)-(?P<number>\d+)$")


def seat_changes_url(*, event_id: int | None = None, seat_id: int | None = None) -> str:
    """The admin's seat-change log, narrowed to one event's or one seat's changes."""
    url = reverse("admin:seats_seatchange_changelist")
    query = {"event__id__exact": event_id, "seat": seat_id}
    params = {name: value for name, value in query.items() if value is not None}
    return f"{url}?{urlencode(params)}" if params else url


class CauseFilter(admin.SimpleListFilter):
    """The write path behind a change. A fixed list: the stock filter would read the
    distinct causes from the whole log on every page."""

    title = "cause"
    parameter_name = "cause"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [(cause, cause) for cause in SeatChange.Cause.values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        cause = self.value()
        return queryset.filter(cause=cause) if cause else queryset


class SeatFilter(admin.SimpleListFilter):
    """One seat's history: set by the link on the seat's admin page, and shown only then."""

    title = "seat"
    parameter_name = "seat"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        seat_id = parse_id(self.value())
        seat = Seat.objects.select_related("event").filter(pk=seat_id).first() if seat_id else None
        return [(str(seat.pk), f"{seat.label} ({seat.event})")] if seat else []

    def has_output(self) -> bool:
        # Shown whenever a seat is asked for, so an unknown one lists nothing, not everything.
        return self.value() is not None

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() is None:
            return queryset
        seat_id = parse_id(self.value())
        return queryset.filter(seat_id=seat_id) if seat_id else queryset.none()


@admin.register(SeatChange)
class SeatChangeAdmin(admin.ModelAdmin[SeatChange]):
    """Who changed which seat, when, and by which write path: the audit trail of every
    committed seat change (seats.changes records one row per seat per version). Read-only."""

    list_display = ["version", "at", "event", "seat_label", "transition", "who", "cause"]
    list_display_links = ["version"]
    list_filter = ["event", CauseFilter, "to_state", SeatFilter]
    # One query per page, however many rows: the columns read only these.
    list_select_related = ["event", "seat", "actor"]
    search_fields = ["seat__section", "seat__row_label", "actor__username"]
    search_help_text = 'A seat ("Stalls-A-8"), a section or row, or a customer\'s username.'
    # Event by event in version order: the (event, version) index serves it.
    ordering = ["event_id", "version", "id"]
    # The unfiltered total would count the whole log on every page.
    show_full_result_count = False
    fields = ["event", "seat", "version", "at", "from_state", "to_state", "actor", "cause"]
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SeatChange | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SeatChange | None = None) -> bool:
        return False

    @admin.display(description="seat", ordering="seat_id")
    def seat_label(self, obj: SeatChange) -> str:
        return obj.seat.label

    @admin.display(description="from → to")
    def transition(self, obj: SeatChange) -> str:
        return f"{obj.from_state} → {obj.to_state}"

    @admin.display(description="who", ordering="actor__username")
    def who(self, obj: SeatChange) -> str:
        if obj.actor is not None:
            return obj.actor.get_username()
        # Only the sweeper writes without an actor; an actor's account may be gone since.
        return "system" if obj.cause == "expire" else "(deleted user)"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[SeatChange], bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        code = _SEAT_CODE.match(search_term.strip())
        if code:
            found |= queryset.filter(
                seat__section__iexact=code["section"],
                seat__row_label__iexact=code["row"],
                seat__number=int(code["number"]),
            )
        return found, may_have_duplicates
