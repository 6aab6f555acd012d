"""A demo venue, an event on sale, a customer and a staff user. Safe to run again."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from events.models import Event, Venue
from seats import services

VENUE = {"name": "Demo Arena", "city": "Springfield", "address": "1 Main Street"}
EVENT_NAME = "Demo Night"
SECTIONS = [
    services.SectionSpec(name="Stalls", rows=10, seats_per_row=20, price=Decimal("45.00")),
    services.SectionSpec(name="Circle", rows=6, seats_per_row=18, price=Decimal("35.00")),
    services.SectionSpec(name="Balcony", rows=5, seats_per_row=16, price=Decimal("25.00")),
]
CUSTOMER = ("demo", "demo-pass-2026")
STAFF = ("admin", "admin-pass-2026")


class Command(BaseCommand):
    help = "Creates the demo venue, event (on sale), customer and staff user, unless they exist."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            venue, _ = Venue.objects.get_or_create(
                name=VENUE["name"], defaults={k: v for k, v in VENUE.items() if k != "name"}
            )
            existing = Event.objects.filter(venue=venue, name=EVENT_NAME).order_by("pk").first()
            event_is_new = existing is None
            event = existing or self._create_event(venue)
            customer_is_new = self._ensure_user(*CUSTOMER, staff=False)
            staff_is_new = self._ensure_user(*STAFF, staff=True)

        event.refresh_from_db()
        seats = event.seats.count()
        self.stdout.write(
            f"Event: {event.name} at {venue} ({seats} seats, "
            f"{event.get_sale_state_display().lower()}"
            f"{'' if event_is_new else ', already there'}) -> {event.get_absolute_url()}"
        )
        for (username, password), is_new, role in (
            (CUSTOMER, customer_is_new, "customer"),
            (STAFF, staff_is_new, "staff, /admin/"),
        ):
            note = "" if is_new else " (existing user; password left as it was)"
            self.stdout.write(f"Login ({role}): {username} / {password}{note}")

    def _create_event(self, venue: Venue) -> Event:
        starts_at = (timezone.now() + timedelta(days=14)).replace(
            hour=20, minute=0, second=0, microsecond=0
        )
        event = Event.objects.create(
            name=EVENT_NAME,
            venue=venue,
            starts_at=starts_at,
            hold_duration=timedelta(minutes=10),
            max_seats_per_customer=8,
        )
        services.generate_seat_map(event_id=event.pk, sections=SECTIONS)
        return services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE)

    def _ensure_user(self, username: str, password: str, *, staff: bool) -> bool:
        """Creates the user unless one with this name exists. Returns whether it was created."""
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            return False
        if staff:
            User.objects.create_superuser(username, f"{username}@example.com", password)
        else:
            User.objects.create_user(username, f"{username}@example.com", password)
        return True
