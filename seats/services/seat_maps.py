"""Seat-map generation for draft events: sections of rows x seats at a price."""

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
    return [
        Seat(
            event=event,
            section=spec.name.strip(),
            row_label=row_label(r),
            number=n,
            x=n,
            y=r + 1,
            price=spec.price,
        )
        for r in range(spec.rows)
        for n in range(1, spec.seats_per_row + 1)
    ]


def generate_seat_map(*, event_id: int, sections: Sequence[SectionSpec]) -> int:
    """Creates the seats of new sections (rows x seats per row at the section's price).

    Only while the event is a draft, so no viewer's map goes stale. Returns seats created.
    Raises Conflict if the event is not a draft or a section name is already used,
    InvalidRequest for sizes out of range.
    """
    event = rules.get_event(event_id)
    if event.sale_state != Event.SaleState.DRAFT:
        raise Conflict("Seats can only be generated while the event is a draft.")
    seats = [seat for spec in sections for seat in _section_seats(event, spec)]
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
