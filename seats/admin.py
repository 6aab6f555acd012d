"""Staff views of seats, holds and bookings.

Every seat-state change made here goes through seats.services (so it is locked, versioned,
recorded and broadcast); the admin never writes Seat.state, Seat.hold or Event.version.
"""

from collections import defaultdict
from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from events.models import Event

from . import services
from .errors import BookingError
from .models import Booking, Hold, Seat

MAX_LABELS_IN_MESSAGE = 10


def _seat_labels(seat_ids) -> str:
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
def delete_selected(modeladmin, request, queryset):
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
class SeatAdmin(admin.ModelAdmin):
    list_display = ["label", "event", "section", "row_label", "number", "price", "state"]
    list_filter = ["event", "state", "section"]
    list_select_related = ["event"]
    search_fields = ["section", "row_label", "event__name"]
    actions = ["block_seats", "unblock_seats", delete_selected]
    # Seat state and hold change only through services (the actions above).
    readonly_fields = ["event", "state", "hold"]
    # Once sales open, the seat map is what viewers see: nothing about a seat is edited.
    fixed_fields = ["event", "section", "row_label", "number", "x", "y", "price", "state", "hold"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Seat | None = None) -> bool:
        if obj is not None and obj.event.sale_state != Event.SaleState.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Seat | None = None):
        if obj is not None and obj.event.sale_state != Event.SaleState.DRAFT:
            return self.fixed_fields
        return self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
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
        self, request: HttpRequest, queryset: QuerySet[Seat], service: Callable, *, done: str
    ) -> None:
        by_event: dict[int, list[int]] = defaultdict(list)
        for event_id, seat_id in queryset.order_by("event_id", "pk").values_list("event_id", "pk"):
            by_event[event_id].append(seat_id)
        try:
            # One outer transaction, so a refusal for one event undoes the others too.
            with transaction.atomic():
                changed = sum(
                    service(event_id=event_id, seat_ids=ids, actor=request.user)
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


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never added, edited or deleted by hand: only the actions change these.

    The actions need the model's real change permission (`has_act_permission`).
    """

    def has_act_permission(self, request: HttpRequest) -> bool:
        return super().has_change_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
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
        return super().get_queryset(request).annotate(n_seats=Count("seats"))

    @admin.display(description="seats", ordering="n_seats")
    def seat_count(self, obj: Hold) -> int:
        return obj.n_seats

    @admin.action(description="Release (puts its seats back on sale)", permissions=["act"])
    def release(self, request: HttpRequest, queryset: QuerySet[Hold]) -> None:
        for hold in queryset.annotate(n=Count("seats")).order_by("pk"):
            try:
                services.release_hold(hold_id=hold.pk, actor=request.user)
            except BookingError as exc:
                self.message_user(request, f"Hold {hold.pk}: {_error_text(exc)}", messages.ERROR)
            else:
                self.message_user(
                    request, f"Released hold {hold.pk} ({hold.n} seats).", messages.SUCCESS
                )


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdmin):
    list_display = ["id", "customer", "event", "seat_count", "total", "created_at", "status"]
    list_filter = ["event", ("cancelled_at", admin.EmptyFieldListFilter)]
    list_select_related = ["customer", "event"]
    search_fields = ["customer__username", "event__name"]
    fields = ["customer", "event", "seat_labels", "total", "created_at", "cancelled_at"]
    readonly_fields = fields
    actions = ["cancel"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Booking]:
        return super().get_queryset(request).annotate(n_seats=Count("items"))

    @admin.display(description="seats", ordering="n_seats")
    def seat_count(self, obj: Booking) -> int:
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
                services.cancel_booking(booking_id=booking_id, actor=request.user)
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
