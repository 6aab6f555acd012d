"""Plain-data shapes that leave the domain: to pages, the API, and across processes (JSON).

The in-memory channel layer never serializes, Redis does: only ints, strings, lists and
dicts go in here, so a payload that would break in production breaks in tests too.
"""

from decimal import Decimal
from typing import NotRequired, TypedDict


class PublicSeat(TypedDict):
    """What anyone may know about a seat: never who holds or bought it."""

    id: int
    section: str
    row: str
    number: int
    x: float
    y: float
    price: str
    state: str
    features: list[str]  # SeatFeature codes


SeatCounts = dict[str, int]


class SeatDelta(TypedDict):
    """One committed change of an event: its new version, the changed seats, the counts."""

    event: int
    version: int
    seats: list[PublicSeat]
    counts: SeatCounts
    sale_state: NotRequired[str]


def public_seat(
    *,
    id: int,
    section: str,
    row_label: str,
    number: int,
    x: float,
    y: float,
    price: Decimal | str,
    state: str,
    features: list[str],
) -> PublicSeat:
    return {
        "id": id,
        "section": section,
        "row": row_label,
        "number": number,
        "x": x,
        "y": y,
        "price": str(price),
        "state": state,
        "features": features,
    }
