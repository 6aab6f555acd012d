"""Seat-map generation for draft events: sections of rows x seats at a price, placed on the
venue plan (see Seat.x/y: the stage's front centre is (0, 0), the audience at y > 0).

A section is anchored at the centre of its front row (`x`, `y`), turned by `angle` degrees
about that point (positive turns it clockwise on the plan, so a section on the audience's left
angled towards the stage has a negative x and a negative angle), and its rows bent by `curve`:
the front row spans `curve` degrees of a circle whose centre lies in front of the section, every
row behind it is one seat width further from that centre, and seats sit one seat width apart
along their row. `curve=0` gives straight rows.
"""

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from events.models import Event

from .. import changes
from ..errors import Conflict, InvalidRequest
from ..models import Seat
from . import rules

MAX_SEATS_PER_EVENT = 50_000


@dataclass(frozen=True)
class SectionSpec:
    name: str
    rows: int
    seats_per_row: int
    price: Decimal
    x: float = 0.0  # where the centre of the front row is on the plan
    y: float | None = None  # None: two seat widths behind the section before it (or at 1)
    angle: float = 0.0  # degrees, clockwise on the plan, about (x, y)
    curve: float = 0.0  # degrees of arc the front row spans; 0 = straight rows


def seat_position(spec: SectionSpec, row: int, seat: int) -> tuple[float, float]:
    """Where seat `seat` (0-based, left to right as the audience sees it) of row `row`
    (0-based from the front) of the section is on the plan, rounded to 1/100 seat width."""
    offset = seat - (spec.seats_per_row - 1) / 2  # seat widths from the row's middle
    if spec.curve > 0:
        front_radius = max(spec.seats_per_row - 1, 1) / math.radians(spec.curve)
        radius = front_radius + row
        theta = offset / radius
        local_x, local_y = radius * math.sin(theta), radius * math.cos(theta) - front_radius
    else:
        local_x, local_y = offset, float(row)
    turn = math.radians(spec.angle)
    cos, sin = math.cos(turn), math.sin(turn)
    # The plan's y axis points away from the stage (down the screen), so this turns clockwise.
    x = spec.x + local_x * cos - local_y * sin
    y = (1.0 if spec.y is None else spec.y) + local_x * sin + local_y * cos
    return round(x, 2), round(y, 2)


def row_label(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    label = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        label = chr(ord("A") + rem) + label
    return label


def _section_seats(event: Event, spec: SectionSpec) -> list[Seat]:
    if not spec.name.strip():
        raise InvalidRequest("A section needs a name.")
    if not (1 <= spec.rows <= 200 and 1 <= spec.seats_per_row <= 500):
        raise InvalidRequest("A section has 1-200 rows of 1-500 seats.")
    if spec.price < 0:
        raise InvalidRequest("Prices cannot be negative.")
    if not (0 <= spec.curve <= 180 and -180 <= spec.angle <= 180):
        raise InvalidRequest("A section's curve is 0-180 degrees and its angle -180-180.")
    seats = []
    for r in range(spec.rows):
        for n in range(1, spec.seats_per_row + 1):
            x, y = seat_position(spec, r, n - 1)
            seats.append(
                Seat(
                    event=event,
                    section=spec.name.strip(),
                    row_label=row_label(r),
                    number=n,
                    x=x,
                    y=y,
                    price=spec.price,
                )
            )
    return seats


def generate_seat_map(*, event_id: int, sections: Sequence[SectionSpec]) -> int:
    """Creates the seats of new sections (rows x seats per row at the section's price).

    Only while the event is a draft, so no viewer's map goes stale. Returns seats created.
    Raises Conflict if the event is not a draft or a section name is already used,
    InvalidRequest for sizes out of range.
    """
    event = rules.get_event(event_id)
    if event.sale_state != Event.SaleState.DRAFT:
        raise Conflict("Seats can only be generated while the event is a draft.")
    seats: list[Seat] = []
    back = 0.0  # the furthest y from the stage so far, for sections placed behind it
    for spec in sections:
        if spec.y is None:
            spec = dataclasses.replace(spec, y=back + 2 if seats else 1.0)
        section_seats = _section_seats(event, spec)
        seats += section_seats
        back = max([back, *(seat.y for seat in section_seats)])
    if len(seats) > MAX_SEATS_PER_EVENT:
        raise InvalidRequest(f"At most {MAX_SEATS_PER_EVENT:,} seats per event.")
    names = {spec.name.strip() for spec in sections}
    with transaction.atomic():
        # Locked and checked again: opening the sale meanwhile must not let seats slip in.
        locked = Event.objects.select_for_update().get(pk=event.pk)
        if locked.sale_state != Event.SaleState.DRAFT:
            raise Conflict("Seats can only be generated while the event is a draft.")
        if (
            len(names) != len(sections)
            or Seat.objects.filter(event=event, section__in=names).exists()
        ):
            raise Conflict("Each section name may be used once per event.")
        Seat.objects.bulk_create(seats, batch_size=2000)
        changes.recount_seats(event.pk)
    return len(seats)
