"""Creates an event with its seat map, on sale, and prints its id last (for scripts)."""

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from events.models import Event, Venue
from seats import services
from seats.errors import BookingError


def split_rows(rows: int, sections: int) -> list[int]:
    """Rows per section, as even as possible, the larger shares first: 10 into 3 -> 4, 3, 3."""
    share, extra = divmod(rows, sections)
    return [share + (1 if i < extra else 0) for i in range(sections)]


class Command(BaseCommand):
    help = (
        "Creates an event with ROWS x SEATS_PER_ROW seats at PRICE, puts it on sale, and "
        "prints its id as the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--rows", type=int, required=True, help="Rows in total.")
        parser.add_argument("--seats-per-row", type=int, required=True)
        parser.add_argument("--price", required=True, help="Price of every seat, e.g. 42.50.")
        parser.add_argument("--venue", default="Main Hall", help="Venue name (created if new).")
        parser.add_argument(
            "--sections",
            type=int,
            default=1,
            help="Split the rows into this many sections, named A, B, ... (default 1).",
        )
        parser.add_argument("--hold-minutes", type=float, help="Hold duration (default 10).")
        parser.add_argument("--max-seats", type=int, help="Seats per customer (default 8).")
        parser.add_argument(
            "--starts-at", help="ISO date-time, e.g. 2026-12-31T20:00 (default in a week)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("--name must not be empty.")
        rows, per_row, n_sections = options["rows"], options["seats_per_row"], options["sections"]
        if rows < 1 or per_row < 1:
            raise CommandError("--rows and --seats-per-row must be at least 1.")
        if not 1 <= n_sections <= min(rows, 26):
            raise CommandError(f"--sections must be between 1 and {min(rows, 26)} (one row each).")
        try:
            price = Decimal(options["price"])
        except InvalidOperation:
            raise CommandError(f"--price must be a number, not {options['price']!r}.") from None
        if not price.is_finite() or not 0 <= price < 1_000_000 or price != round(price, 2):
            raise CommandError("--price must be between 0 and 999999.99, in cents at most.")
        if -(-rows // n_sections) > 200 or per_row > 500:
            raise CommandError(
                "A section has at most 200 rows of at most 500 seats; use more --sections."
            )
        venue_name = options["venue"].strip()
        if not venue_name:
            raise CommandError("--venue must not be empty.")
        starts_at = timezone.now() + timedelta(days=7)
        if options["starts_at"]:
            parsed = parse_datetime(options["starts_at"])
            if parsed is None:
                raise CommandError("--starts-at must be an ISO date-time like 2026-12-31T20:00.")
            starts_at = parsed
            if timezone.is_naive(starts_at):
                starts_at = timezone.make_aware(starts_at)

        event = Event(name=name, starts_at=starts_at)
        if options["hold_minutes"] is not None:
            try:
                event.hold_duration = timedelta(minutes=options["hold_minutes"])
            except (OverflowError, ValueError):
                raise CommandError("--hold-minutes must be between 0.5 and 120.") from None
        if options["max_seats"] is not None:
            event.max_seats_per_customer = options["max_seats"]
        sections = [
            services.SectionSpec(name=chr(ord("A") + i), rows=n, seats_per_row=per_row, price=price)
            for i, n in enumerate(split_rows(rows, n_sections))
        ]
        try:
            # All or nothing: a refused seat map leaves no half-made event behind.
            with transaction.atomic():
                event.venue, _ = Venue.objects.get_or_create(name=venue_name)
                event.full_clean()
                event.save()
                created = services.generate_seat_map(event_id=event.pk, sections=sections)
                services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE)
        except ValidationError as exc:
            problems = "; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()
            )
            raise CommandError(f"Invalid event: {problems}") from None
        except BookingError as exc:
            raise CommandError(exc.message) from None

        names = ", ".join(s.name for s in sections)
        self.stdout.write(
            f"Created {event.name!r} at {event.venue} with {created} seats "
            f"(section{'s' if len(sections) > 1 else ''} {names}, {price:.2f} each), on sale at "
            f"{event.get_absolute_url()}"
        )
        self.stdout.write(str(event.pk))
