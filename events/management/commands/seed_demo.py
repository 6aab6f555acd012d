"""A demo venue, an event on sale, a customer and a staff user. Safe to run again.

The demo hall (about 500 seats, four price tiers) is laid out as a theatre: fan-shaped
curved stalls in front of the stage, a box on each side of the stage, angled side balconies
further back and a curved rear circle; a few wheelchair spaces with companion seats, and
restricted-view rows at the back of the balconies and circle. `--big` adds a 20,000-seat
stadium event for trying the seat map and the live updates at scale.
"""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from events.models import Event, Venue
from seats import services
from seats.services.seat_maps import SectionSpec

VENUE = {"name": "Demo Arena", "city": "Springfield", "address": "1 Main Street"}
EVENT_NAME = "Demo Night"
# Seat widths on the plan: the stage's front centre at (0, 0), y away from the stage.
SECTIONS = [
    # A fan in front of the stage, its front row's ends curving towards it.
    SectionSpec("Stalls", 10, 24, Decimal("65.00"), x=0, y=4, curve=50, wheelchair_rows=("J",)),
    # Along the side walls beside the stage's front, facing the middle.
    SectionSpec("Box Left", 2, 4, Decimal("120.00"), x=-15, y=3, angle=90),
    SectionSpec("Box Right", 2, 4, Decimal("120.00"), x=15, y=3, angle=-90),
    # Further back along the walls, turned towards the stage; the back row sees less.
    SectionSpec(
        "Balcony Left", 3, 12, Decimal("40.00"), x=-17, y=11, angle=75, restricted_rows=("C",)
    ),
    SectionSpec(
        "Balcony Right", 3, 12, Decimal("40.00"), x=17, y=11, angle=-75, restricted_rows=("C",)
    ),
    # Behind the stalls; its last rows sit under the overhang.
    SectionSpec(
        "Circle",
        6,
        30,
        Decimal("30.00"),
        x=0,
        y=18,
        curve=50,
        wheelchair_rows=("A",),
        restricted_rows=("E", "F"),
    ),
]
BIG_VENUE = {"name": "Demo Stadium", "city": "Springfield", "address": "2 Park Road"}
BIG_EVENT_NAME = "Stadium Night"
BIG_SECTIONS = [
    SectionSpec("Floor", 40, 100, Decimal("90.00"), x=0, y=3, wheelchair_rows=("AN",)),
    SectionSpec("Lower Left", 30, 40, Decimal("70.00"), x=-58, y=15, angle=90),
    SectionSpec("Lower Right", 30, 40, Decimal("70.00"), x=58, y=15, angle=-90),
    SectionSpec(
        "Upper", 68, 200, Decimal("45.00"), x=0, y=48, curve=30, restricted_rows=("BN", "BO", "BP")
    ),
]  # 20,000 seats
CUSTOMER = ("demo", "demo-pass-2026")
STAFF = ("admin", "admin-pass-2026")


class Command(BaseCommand):
    help = (
        "Creates the demo venue, event (on sale), customer and staff user, unless they exist; "
        "with --big also a 20,000-seat stadium event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--big",
            action="store_true",
            help=f"Also seed {BIG_EVENT_NAME!r} at {BIG_VENUE['name']!r}: 20,000 seats, on sale.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        seeded = [(VENUE, EVENT_NAME, SECTIONS)]
        if options["big"]:
            seeded.append((BIG_VENUE, BIG_EVENT_NAME, BIG_SECTIONS))
        with transaction.atomic():
            events = [self._ensure_event(*args) for args in seeded]
            customer_is_new = self._ensure_user(*CUSTOMER, staff=False)
            staff_is_new = self._ensure_user(*STAFF, staff=True)

        for event, event_is_new in events:
            event.refresh_from_db()
            self.stdout.write(
                f"Event: {event.name} at {event.venue} ({event.seats.count()} seats, "
                f"{event.get_sale_state_display().lower()}"
                f"{'' if event_is_new else ', already there'}) -> {event.get_absolute_url()}"
            )
        for (username, password), is_new, role in (
            (CUSTOMER, customer_is_new, "customer"),
            (STAFF, staff_is_new, "staff, /admin/"),
        ):
            note = "" if is_new else " (existing user; password left as it was)"
            self.stdout.write(f"Login ({role}): {username} / {password}{note}")

    def _ensure_event(
        self, venue_fields: dict[str, str], name: str, sections: list[SectionSpec]
    ) -> tuple[Event, bool]:
        """The venue's event of this name, created on sale with these sections unless it
        exists. Returns it and whether it was created."""
        venue, _ = Venue.objects.get_or_create(
            name=venue_fields["name"],
            defaults={k: v for k, v in venue_fields.items() if k != "name"},
        )
        existing = Event.objects.filter(venue=venue, name=name).order_by("pk").first()
        if existing is not None:
            return existing, False
        starts_at = (timezone.now() + timedelta(days=14)).replace(
            hour=20, minute=0, second=0, microsecond=0
        )
        event = Event.objects.create(
            name=name,
            venue=venue,
            starts_at=starts_at,
            hold_duration=timedelta(minutes=10),
            max_seats_per_customer=8,
        )
        services.generate_seat_map(event_id=event.pk, sections=sections)
        return services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE), True

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
