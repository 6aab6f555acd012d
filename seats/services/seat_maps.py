"""Seat maps of draft events: sections generated from rows x seats at a price, placed on the
venue plan (see Seat.x/y: the stage's front centre is (0, 0), x grows to the audience's right,
y away from the stage), and the one write path that adds seats to a draft's map
(`add_seats`, also used by seats.services.layout_import).

A section is anchored at the centre of its front row (`x`, `y`), turned by `angle` degrees
about that point, and its rows bent by `curve`. With the plan drawn stage at the top (y down
the screen) a positive angle turns the section clockwise: a section on the audience's left
(x < 0) turned to face the stage centre has a positive angle, one on the right a negative
angle, and +/-90 puts a section along a side wall facing the middle (side boxes). `curve` is
the degrees of a circle the front row spans, the circle's centre in front of the section
(towards the stage); every row behind it is one seat width further from that centre, and
seats sit one seat width apart along their row. `curve=0` gives straight rows.
"""

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from events.models import Event

from .. import changes, locking
from ..errors import Conflict, InvalidRequest, NotFound
from ..models import Seat, seat_code
from . import rules

MAX_SEATS_PER_EVENT = 50_000
MAX_PRICE = Decimal("999999.99")  # Seat.price: 8 digits, 2 of them decimals
MAX_SECTION_ROWS = 200
MAX_SEATS_PER_ROW = 500
MAX_COORDINATE = 10_000.0  # seat widths from the stage: far beyond any hall
NOT_A_DRAFT = "Seats can only be added while the event is a draft."


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
    # Row labels ("A", "K") with a wheelchair space at each end and a companion seat beside it.
    wheelchair_rows: tuple[str, ...] = ()
    # Row labels whose every seat has a restricted view.
    restricted_rows: tuple[str, ...] = ()


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


def parse_row_list(text: str, *, rows: int) -> tuple[str, ...]:
    """Row labels written as "A, C", "A;C" or ranges "P-R" (any case), for a section of
    `rows` rows, in the order given. Raises InvalidRequest naming what is not a row of it."""
    labels = [row_label(i) for i in range(rows)]
    index = {label: i for i, label in enumerate(labels)}
    chosen: list[str] = []
    for part in re.split(r"[\s,;]+", text.strip().upper()):
        if not part:
            continue
        first, _, last = part.partition("-")
        if first not in index or (last and last not in index):
            raise InvalidRequest(
                f"“{part}” is not a row of this section (rows {labels[0]}–{labels[-1]})."
            )
        start, end = sorted((index[first], index[last or first]))
        chosen += [label for label in labels[start : end + 1] if label not in chosen]
    return tuple(chosen)


def check_price(price: Decimal) -> None:
    """Raises InvalidRequest unless the price is 0-999999.99 in whole cents."""
    if not price.is_finite() or not 0 <= price <= MAX_PRICE or price != round(price, 2):
        raise InvalidRequest("A price is 0 to 999999.99, in whole cents.")


def _flags(spec: SectionSpec, label: str, number: int) -> dict[str, bool]:
    """The seat's wheelchair / companion / restricted_view flags by the section's rows."""
    last = spec.seats_per_row
    wheelchair = label in spec.wheelchair_rows and number in (1, last)
    companion = label in spec.wheelchair_rows and not wheelchair and number in (2, last - 1)
    return {
        "wheelchair": wheelchair,
        "companion": companion,
        "restricted_view": label in spec.restricted_rows,
    }


def _section_seats(event_id: int, spec: SectionSpec) -> list[Seat]:
    if not spec.name.strip():
        raise InvalidRequest("A section needs a name.")
    if not (1 <= spec.rows <= MAX_SECTION_ROWS and 1 <= spec.seats_per_row <= MAX_SEATS_PER_ROW):
        raise InvalidRequest(
            f"A section has 1-{MAX_SECTION_ROWS} rows of 1-{MAX_SEATS_PER_ROW} seats."
        )
    check_price(spec.price)
    if not (0 <= spec.curve <= 180 and -180 <= spec.angle <= 180):
        raise InvalidRequest("A section's curve is 0-180 degrees and its angle -180-180.")
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in (spec.x, spec.y or 0.0)):
        raise InvalidRequest(
            f"A section's position must be a number within ±{MAX_COORDINATE:,g} seat widths."
        )
    labels = [row_label(r) for r in range(spec.rows)]
    unknown = sorted(set(spec.wheelchair_rows + spec.restricted_rows) - set(labels))
    if unknown:
        raise InvalidRequest(
            f"Section {spec.name.strip()} has rows {labels[0]}-{labels[-1]}, "
            f"not {', '.join(unknown)}."
        )
    seats = []
    for r, label in enumerate(labels):
        for n in range(1, spec.seats_per_row + 1):
            x, y = seat_position(spec, r, n - 1)
            seats.append(
                Seat(
                    event_id=event_id,
                    section=spec.name.strip(),
                    row_label=label,
                    number=n,
                    x=x,
                    y=y,
                    price=spec.price,
                    **_flags(spec, label, n),
                )
            )
    return seats


def generate_seat_map(*, event_id: int, sections: Sequence[SectionSpec]) -> int:
    """Creates the seats of new sections (rows x seats per row at the section's price, placed
    by the section's position, angle and curve, flagged by its wheelchair and restricted
    rows). A section without `y` goes two seat widths behind the ones before it.

    Only while the event is a draft, so no viewer's map goes stale. Returns seats created.
    Raises NotFound for no such event, Conflict if the event is not a draft or a section name
    is already used, InvalidRequest for sizes, prices or angles out of range.
    """
    event = rules.get_event(event_id)
    if event.sale_state != Event.SaleState.DRAFT:
        raise Conflict(NOT_A_DRAFT)
    names = [spec.name.strip() for spec in sections]
    if len(set(names)) != len(names):
        raise Conflict("Each section name may be used once per event.")
    seats: list[Seat] = []
    back = 0.0  # the furthest y from the stage so far, for sections placed behind it
    for spec in sections:
        if spec.y is None:
            spec = dataclasses.replace(spec, y=back + 2 if seats else 1.0)
        section_seats = _section_seats(event.pk, spec)
        seats += section_seats
        back = max([back, *(seat.y for seat in section_seats)])
        if len(seats) > MAX_SEATS_PER_EVENT:
            break  # add_seats refuses it; no need to build the rest
    return add_seats(event_id=event.pk, seats=seats, new_sections=True)


def add_seats(*, event_id: int, seats: Sequence[Seat], new_sections: bool = False) -> int:
    """Saves `seats` (new Seat objects of this event) on a draft event's map, all or none,
    and recounts the event's seat counters. Returns how many were created.

    Raises Conflict if the event is not a draft (checked under its row lock, so a sale
    opening meanwhile cannot let seats slip in), if a seat's place (section, row, number) is
    already on the map or given twice, or, with `new_sections`, if one of the sections already
    has seats; InvalidRequest if the map would pass MAX_SEATS_PER_EVENT.
    """
    places = [(s.section, s.row_label, s.number) for s in seats]
    if len(set(places)) != len(places):
        raise Conflict("Each seat (section, row, number) may be given once.")
    with locking.locked_transaction():
        try:
            locked = Event.objects.select_for_update().get(pk=event_id)
        except Event.DoesNotExist:
            raise NotFound("No such event.") from None
        if locked.sale_state != Event.SaleState.DRAFT:
            raise Conflict(NOT_A_DRAFT)
        existing = Seat.objects.filter(event_id=event_id)
        if existing.count() + len(seats) > MAX_SEATS_PER_EVENT:
            raise InvalidRequest(f"At most {MAX_SEATS_PER_EVENT:,} seats per event.")
        sections = {s.section for s in seats}
        if new_sections and existing.filter(section__in=sections).exists():
            raise Conflict("Each section name may be used once per event.")
        taken = set(
            existing.filter(section__in=sections).values_list("section", "row_label", "number")
        )
        clashes = [seat_code(*place) for place in places if place in taken]
        if clashes:
            shown = ", ".join(clashes[:10]) + (", …" if len(clashes) > 10 else "")
            raise Conflict(f"Already on the map: {shown}.")
        Seat.objects.bulk_create(seats, batch_size=2000)
        changes.recount_seats(event_id)
    return len(seats)
