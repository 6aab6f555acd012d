"""Seats, holds and bookings.

Seat.state is what every viewer sees; it is written only by seats.services, under row locks.
The database itself refuses the states that would mean a double sale (see the constraints).
"""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from events.models import Event

from .payloads import SeatDelta


class SeatState(models.TextChoices):
    AVAILABLE = "available", "available"
    HELD = "held", "held"
    SOLD = "sold", "sold"
    BLOCKED = "blocked", "blocked"


class SeatFeature(models.TextChoices):
    """What a seat is besides its place and price: shown in the legend and the seat's name."""

    WHEELCHAIR = "wheelchair", "wheelchair space"
    COMPANION = "companion", "companion seat"
    RESTRICTED_VIEW = "restricted_view", "restricted view"


def seat_features(*, wheelchair: bool, companion: bool, restricted_view: bool) -> list[str]:
    """The SeatFeature codes of a seat's flags, in SeatFeature order."""
    flags = {
        SeatFeature.WHEELCHAIR: wheelchair,
        SeatFeature.COMPANION: companion,
        SeatFeature.RESTRICTED_VIEW: restricted_view,
    }
    return [str(code) for code, on in flags.items() if on]


def seat_code(section: str, row: str, number: int) -> str:
    """The short label staff and the API use: "Stalls-A-8"."""
    return f"{section}-{row}-{number}"


def seat_place(section: str, row: str, number: int) -> str:
    """Where the seat is, in words: "Section Stalls, row A, seat 8"."""
    return f"Section {section}, row {row}, seat {number}"


def active_hold(*, prefix: str = "", now: datetime) -> Q:
    """Holds that still hold their seats: not ended, not past their expiry."""
    return Q(**{f"{prefix}ended_at__isnull": True, f"{prefix}expires_at__gt": now})


def lapsed_hold(*, prefix: str = "", now: datetime) -> Q:
    """Holds that are no longer holds: ended, or past their expiry (the one rule for "an
    expired hold counts as free", whether or not the sweeper has ended it yet)."""
    return Q(**{f"{prefix}ended_at__isnull": False}) | Q(**{f"{prefix}expires_at__lte": now})


def free_seat(*, prefix: str = "", now: datetime) -> Q:
    """Seats a customer could take now: available, or held under a lapsed hold.
    `prefix` reaches seats from another model ("seats__" from Event)."""
    held = Q(**{f"{prefix}state": SeatState.HELD})
    return Q(**{f"{prefix}state": SeatState.AVAILABLE}) | (
        held & lapsed_hold(prefix=f"{prefix}hold__", now=now)
    )


def visible_state(
    state: str, *, hold_expires_at: datetime | None, hold_ended_at: datetime | None, now: datetime
) -> str:
    """The state viewers see for a stored seat state: a seat under a lapsed hold is free."""
    if state == SeatState.HELD and (
        hold_ended_at is not None or hold_expires_at is None or hold_expires_at <= now
    ):
        return SeatState.AVAILABLE
    return state


class Seat(models.Model):
    State = SeatState

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="seats")
    section = models.CharField(max_length=40)
    row_label = models.CharField(max_length=8)
    number = models.PositiveIntegerField()
    # Where the seat is drawn, in seat widths on the venue plan: the front centre of the stage
    # is (0, 0), x grows to the audience's right and y away from the stage (the audience is at
    # y > 0). Sections at angles and on curves are just seats at these points.
    x = models.FloatField()
    y = models.FloatField()
    price = models.DecimalField(max_digits=8, decimal_places=2)
    wheelchair = models.BooleanField("wheelchair space", default=False)
    companion = models.BooleanField("companion seat", default=False)
    restricted_view = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=SeatState.choices, default=SeatState.AVAILABLE)
    hold = models.ForeignKey(
        "Hold", on_delete=models.PROTECT, null=True, blank=True, related_name="seats"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "section", "row_label", "number"], name="seat_unique_place"
            ),
            # A seat is held exactly when it belongs to a hold.
            models.CheckConstraint(
                condition=(Q(state=SeatState.HELD) & Q(hold__isnull=False))
                | (~Q(state=SeatState.HELD) & Q(hold__isnull=True)),
                name="seat_held_iff_hold",
            ),
            models.CheckConstraint(
                condition=Q(state__in=SeatState.values), name="seat_state_valid"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="seat_price_not_negative"),
        ]
        indexes = [models.Index(fields=["event", "state"], name="seat_event_state")]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return seat_code(self.section, self.row_label, self.number)

    @property
    def place(self) -> str:
        return seat_place(self.section, self.row_label, self.number)

    @property
    def features(self) -> list[str]:
        return seat_features(
            wheelchair=self.wheelchair,
            companion=self.companion,
            restricted_view=self.restricted_view,
        )


class HoldQuerySet(models.QuerySet["Hold"]):
    def active(self, now: datetime) -> "HoldQuerySet":
        """Holds that still hold their seats: not ended and not past their expiry."""
        return self.filter(active_hold(now=now))

    def lapsed(self, now: datetime) -> "HoldQuerySet":
        return self.filter(lapsed_hold(now=now))

    def due(self, now: datetime) -> "HoldQuerySet":
        """Holds past their expiry that the sweeper has not ended yet."""
        return self.filter(ended_at__isnull=True, expires_at__lte=now)

    def open_for(self, *, customer_id: int, event_id: int, now: datetime) -> "Hold | None":
        """The customer's active hold (basket) for the event, if any."""
        return (
            self.active(now)
            .filter(customer_id=customer_id, event_id=event_id)
            .order_by("-expires_at")
            .first()
        )


class Hold(models.Model):
    """A customer's basket of seats for one event, theirs until `expires_at`.

    A hold past its expiry is no hold, whether or not the sweeper has released it yet.
    """

    class EndReason(models.TextChoices):
        RELEASED = "released"
        EXPIRED = "expired"
        BOOKED = "booked"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="holds")
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="holds"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=10, choices=EndReason.choices, blank=True)

    objects = HoldQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["event", "customer", "ended_at"], name="hold_customer_open"),
            models.Index(fields=["ended_at", "expires_at"], name="hold_open_expiry"),
        ]

    def __str__(self) -> str:
        return f"Hold {self.pk} by {self.customer} for {self.event}"

    def is_active(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now

    def is_due(self, now: datetime) -> bool:
        """Past its expiry and not yet ended by the sweeper."""
        return self.ended_at is None and self.expires_at <= now


class Booking(models.Model):
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="bookings")
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings"
    )
    seats = models.ManyToManyField(Seat, through="BookingSeat", related_name="bookings")
    total = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    created_at = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True, blank=True)

    # The seats book_seats sold in this booking, set on the instance it returns (so its
    # answer needs no query); None on instances loaded from the database.
    booked_seat_ids: list[int] | None = None
    # The API's answer (JSON), when book_seats stored it under an Idempotency-Key in the
    # booking's own statement (`once`); None otherwise.
    answer: str | None = None
    # What the statement that made it announces once committed (the database path); None
    # otherwise.
    delta: SeatDelta | None = None

    class Meta:
        ordering = ["-created_at", "-id"]
        # The seat limit counts a customer's bookings of one event on every hold and
        # booking: without it the count scans the event's (or the customer's) bookings.
        indexes = [models.Index(fields=["customer", "event"], name="booking_customer_event")]

    def __str__(self) -> str:
        return f"Booking {self.pk} by {self.customer} for {self.event}"

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None


class BookingSeat(models.Model):
    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="items")
    seat = models.ForeignKey(Seat, on_delete=models.PROTECT, related_name="booking_items")
    price = models.DecimalField(max_digits=8, decimal_places=2)
    # False once the booking is cancelled; only active rows count as a sale.
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            # The last line of defence against a double sale.
            models.UniqueConstraint(
                fields=["seat"], condition=Q(active=True), name="one_active_booking_per_seat"
            ),
            models.UniqueConstraint(fields=["booking", "seat"], name="booking_seat_once"),
        ]

    def __str__(self) -> str:
        return f"{self.seat} in booking {self.booking_id}"


class SeatChange(models.Model):
    """One committed seat-state change. The realtime layer replays these to late viewers."""

    class Cause(models.TextChoices):
        """The write path behind a change (seats.services)."""

        HOLD = "hold", "hold"
        RELEASE = "release", "release"
        BOOK = "book", "book"
        CANCEL = "cancel", "cancel"
        EXPIRE = "expire", "expire"
        BLOCK = "block", "block"
        UNBLOCK = "unblock", "unblock"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="seat_changes")
    seat = models.ForeignKey(Seat, on_delete=models.CASCADE, related_name="changes")
    from_state = models.CharField(max_length=10, choices=SeatState.choices)
    to_state = models.CharField(max_length=10, choices=SeatState.choices)
    version = models.BigIntegerField()
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    cause = models.CharField(max_length=20, choices=Cause.choices)

    class Meta:
        ordering = ["version", "id"]
        indexes = [models.Index(fields=["event", "version"], name="seatchange_event_version")]

    def __str__(self) -> str:
        return f"v{self.version} {self.seat}: {self.from_state} -> {self.to_state}"


class IdempotencyKey(models.Model):
    """The answer to one API write sent with an `Idempotency-Key`: a retry with the same key
    gets this answer again instead of writing twice.

    Written in the same transaction as the write it answers, so a committed write always
    has its answer here; `status` is null only inside that transaction.
    """

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    key = models.CharField(max_length=255)
    # sha256 of the method, path and body: the same key on another request is refused.
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(null=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "key"], name="idempotency_key_once"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_created")]

    def __str__(self) -> str:
        return f"{self.key!r} of customer {self.customer_id}: {self.status}"
