"""Creates an event with its seat map, on sale (or a draft), and prints its id last (for
scripts)."""

import math
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from events.models import Event, Venue
from seats import services
from seats.errors import BookingError
from seats.services import layout_import
from seats.services.seat_maps import SectionSpec, check_price, parse_row_list

SECTION_KEYS = ("rows", "seats", "price", "x", "y", "angle", "curve", "wheelchair", "restricted")
SECTION_HELP = (
    'A section, repeatable: "NAME:rows=R,seats=S,price=P[,x=X][,y=Y][,angle=DEG][,curve=DEG]'
    '[,wheelchair=ROWS][,restricted=ROWS]", e.g. --section "Stalls:rows=20,seats=30,price=45,'
    'curve=60,y=3" --section "Box Left:rows=2,seats=4,price=120,x=-15,y=3,angle=90". '
    "x/y place the middle of the front row in seat widths from the stage's front centre (x to "
    "the audience's right, y away from the stage; no y: behind the section before); angle "
    "turns it clockwise on the plan (a left-hand section faces the stage with a positive "
    "angle); curve is the degrees of arc the front row spans. ROWS are row labels separated "
    'by ";" with ranges, e.g. wheelchair=A;K restricted=P-R: wheelchair rows get a wheelchair '
    "space at each end and a companion seat beside it."
)


def split_rows(rows: int, sections: int) -> list[int]:
    """Rows per section, as even as possible, the larger shares first: 10 into 3 -> 4, 3, 3."""
    share, extra = divmod(rows, sections)
    return [share + (1 if i < extra else 0) for i in range(sections)]


def parse_section(text: str) -> SectionSpec:
    """A --section value (see SECTION_HELP). Raises CommandError saying what is wrong."""
    name, colon, rest = text.partition(":")
    name = name.strip()
    if not colon or not name:
        raise CommandError(f'--section {text!r}: write it as "NAME:rows=R,seats=S,price=P".')
    values: dict[str, str] = {}
    for item in rest.split(","):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals or key not in SECTION_KEYS or key in values:
            known = ", ".join(SECTION_KEYS)
            raise CommandError(
                f"--section {name}: {item.strip()!r} is not one of {known} as KEY=VALUE, each once."
            )
        values[key] = value
    missing = [key for key in ("rows", "seats", "price") if key not in values]
    if missing:
        raise CommandError(f"--section {name}: give {', '.join(missing)}.")

    def number(key: str, kind: type[int] | type[float]) -> Any:
        try:
            value = kind(values[key])
        except ValueError:
            raise CommandError(f"--section {name}: {key} must be a number.") from None
        if not math.isfinite(value):
            raise CommandError(f"--section {name}: {key} must be a number.")
        return value

    try:
        price = Decimal(values["price"])
        check_price(price)
    except (InvalidOperation, BookingError):
        raise CommandError(
            f"--section {name}: price must be 0 to 999999.99, e.g. 45 or 42.50."
        ) from None
    rows = number("rows", int)
    try:
        wheelchair, restricted = (
            parse_row_list(values.get(key, ""), rows=max(rows, 1))
            for key in ("wheelchair", "restricted")
        )
    except BookingError as exc:
        raise CommandError(f"--section {name}: {exc.message}") from None
    return SectionSpec(
        name=name,
        rows=rows,
        seats_per_row=number("seats", int),
        price=price,
        x=number("x", float) if "x" in values else 0.0,
        y=number("y", float) if "y" in values else None,
        angle=number("angle", float) if "angle" in values else 0.0,
        curve=number("curve", float) if "curve" in values else 0.0,
        wheelchair_rows=wheelchair,
        restricted_rows=restricted,
    )


def read_layout(path: str) -> list[layout_import.LayoutSeat]:
    """The seats of a --layout file. Raises CommandError listing every bad line."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"--layout {path}: cannot read it ({exc}).") from None
    try:
        return layout_import.parse_layout(text, format=layout_import.guess_format(path, text))
    except layout_import.LayoutError as exc:
        lines = [f"  line {n}: {problem}" if n else f"  {problem}" for n, problem in exc.problems]
        raise CommandError(
            f"--layout {path} has mistakes, nothing was created:\n" + "\n".join(lines)
        ) from None


class Command(BaseCommand):
    help = (
        "Creates an event, puts it on sale (unless --draft) and prints its id as the last "
        "line. Seats come from --section (repeatable, each with its own price, position, "
        "angle and curve), --layout FILE (CSV/JSON: section,row,number,x,y,price,attributes), "
        "or both; or, the short form, --rows R --seats-per-row S --price P [--sections N]: "
        "R rows of S seats at one price, split into N sections named A, B, ..."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--section", action="append", default=[], metavar="SPEC", help=SECTION_HELP
        )
        parser.add_argument(
            "--layout",
            metavar="FILE",
            help="Seats from a CSV or JSON layout file (see README, Venue layouts): one seat "
            "per line, section,row,number,x,y,price,attributes.",
        )
        parser.add_argument("--rows", type=int, help="Short form: rows in total.")
        parser.add_argument("--seats-per-row", type=int, help="Short form: seats in each row.")
        parser.add_argument("--price", help="Short form: price of every seat, e.g. 42.50.")
        parser.add_argument(
            "--sections",
            type=int,
            help="Short form: split the rows into this many sections, named A, B, ... (default 1).",
        )
        parser.add_argument("--venue", default="Main Hall", help="Venue name (created if new).")
        parser.add_argument("--hold-minutes", type=float, help="Hold duration (default 10).")
        parser.add_argument("--max-seats", type=int, help="Seats per customer (default 8).")
        parser.add_argument(
            "--starts-at", help="ISO date-time, e.g. 2026-12-31T20:00 (default in a week)."
        )
        parser.add_argument(
            "--draft",
            action="store_true",
            help="Leave the event a draft (staff can preview its seat map in the admin and "
            "open sales there).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("--name must not be empty.")
        short_form = [
            options[key] is not None for key in ("rows", "seats_per_row", "price", "sections")
        ]
        if options["section"] or options["layout"]:
            if any(short_form):
                raise CommandError(
                    "Give either --section/--layout or --rows/--seats-per-row/--price/"
                    "--sections, not both."
                )
            sections = [parse_section(text) for text in options["section"]]
        elif not all(short_form[:3]):
            raise CommandError(
                "Give --section (repeatable) or --layout FILE, or --rows, --seats-per-row "
                "and --price."
            )
        else:
            sections = self._short_form_sections(options)
        layout = read_layout(options["layout"]) if options["layout"] else []
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
        try:
            # All or nothing: a refused seat map leaves no half-made event behind.
            with transaction.atomic():
                event.venue, _ = Venue.objects.get_or_create(name=venue_name)
                event.full_clean()
                event.save()
                created = 0
                if sections:
                    created += services.generate_seat_map(event_id=event.pk, sections=sections)
                if layout:
                    created += layout_import.import_layout(event_id=event.pk, seats=layout)
                if not options["draft"]:
                    services.set_sale_state(event_id=event.pk, sale_state=Event.SaleState.ON_SALE)
        except ValidationError as exc:
            problems = "; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()
            )
            raise CommandError(f"Invalid event: {problems}") from None
        except layout_import.LayoutError as exc:
            lines = [f"  line {n}: {problem}" for n, problem in exc.problems]
            raise CommandError(
                f"--layout {options['layout']}: nothing was created:\n" + "\n".join(lines)
            ) from None
        except BookingError as exc:
            raise CommandError(exc.message) from None

        prices = {s.name: s.price for s in sections} | {s.section: s.price for s in layout}
        described = ", ".join(f"{section} {price:.2f}" for section, price in prices.items())
        state = "a draft" if options["draft"] else "on sale"
        self.stdout.write(
            f"Created {event.name!r} at {event.venue} with {created} seats ({described}), "
            f"{state} at {event.get_absolute_url()}"
        )
        self.stdout.write(str(event.pk))

    def _short_form_sections(self, options: dict[str, Any]) -> list[SectionSpec]:
        rows, per_row = options["rows"], options["seats_per_row"]
        n_sections = options["sections"] or 1
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
        return [
            SectionSpec(name=chr(ord("A") + i), rows=n, seats_per_row=per_row, price=price)
            for i, n in enumerate(split_rows(rows, n_sections))
        ]
