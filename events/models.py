from datetime import timedelta
from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse


class Venue(models.Model):
    name = models.CharField(max_length=200)
    city = models.CharField(max_length=100, blank=True)
    address = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}, {self.city}" if self.city else self.name


if TYPE_CHECKING:
    from django.contrib.auth.models import User


class EventQuerySet(models.QuerySet["Event"]):
    def visible_to(self, user: "User | AnonymousUser") -> "EventQuerySet":
        """The events this visitor may see: drafts are for staff only."""
        if user.is_staff:
            return self
        return self.exclude(sale_state=Event.SaleState.DRAFT)


class Event(models.Model):
    class SaleState(models.TextChoices):
        DRAFT = "draft", "Draft"
        ON_SALE = "on_sale", "On sale"
        CLOSED = "closed", "Closed"

    name = models.CharField(max_length=200)
    venue = models.ForeignKey(Venue, on_delete=models.PROTECT, related_name="events")
    starts_at = models.DateTimeField()
    sale_state = models.CharField(max_length=10, choices=SaleState.choices, default=SaleState.DRAFT)
    hold_duration = models.DurationField(
        default=timedelta(minutes=10),
        validators=[
            MinValueValidator(timedelta(seconds=30)),
            MaxValueValidator(timedelta(hours=2)),
        ],
        help_text="How long a customer may hold seats before booking them.",
    )
    max_seats_per_customer = models.PositiveSmallIntegerField(
        default=8,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Held plus booked seats one customer may have for this event.",
    )
    # Bumped by every committed seat-state change, in the same transaction (seats.changes).
    version = models.BigIntegerField(default=0, editable=False)
    # Seats per stored state, kept by the same UPDATE that bumps the version, so a change
    # costs O(seats changed) while it holds the event row lock (seats.changes).
    seats_available = models.IntegerField(default=0, editable=False)
    seats_held = models.IntegerField(default=0, editable=False)
    seats_sold = models.IntegerField(default=0, editable=False)
    seats_blocked = models.IntegerField(default=0, editable=False)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "id"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("event-detail", args=[self.pk])

    @property
    def is_on_sale(self) -> bool:
        return self.sale_state == self.SaleState.ON_SALE
