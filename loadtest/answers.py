"""The server's JSON answers that the load test reads, checked and turned into typed values.

The API is the contract (README, "JSON API"); an answer that does not follow it reads as
empty here, and the caller files the request by its status code alone.
"""

from dataclasses import dataclass, field
from typing import TypedDict


class SeatInfo(TypedDict):
    """A seat as `GET /api/events/<id>/seats` lists it (the fields the load test uses)."""

    id: int
    section: str
    row: str
    number: int
    state: str


@dataclass
class SeatMap:
    version: int
    seats: list[SeatInfo]

    def states(self) -> dict[int, str]:
        return {seat["id"]: seat["state"] for seat in self.seats}


@dataclass
class Answer:
    """A hold's, booking's or error's answer: the hold id, the seats it names, the error code."""

    code: str = ""
    seats: list[int] = field(default_factory=list)
    hold: int | None = None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def seat_map(data: dict[str, object]) -> SeatMap | None:
    """The seat map answer, or None when `data` is not one."""
    version = _int(data.get("version"))
    raw_seats = data.get("seats")
    if version is None or not isinstance(raw_seats, list):
        return None
    seats: list[SeatInfo] = []
    for raw in raw_seats:
        if not isinstance(raw, dict):
            return None
        seat_id, number = _int(raw.get("id")), _int(raw.get("number"))
        if seat_id is None or number is None:
            return None
        seats.append(
            SeatInfo(
                id=seat_id,
                section=str(raw.get("section", "")),
                row=str(raw.get("row", "")),
                number=number,
                state=str(raw.get("state", "")),
            )
        )
    return SeatMap(version=version, seats=seats)


def answer(data: dict[str, object]) -> Answer:
    """Reads `hold`, `code` and `seats` (ids, or seat objects with an `id`) from an answer."""
    seats: list[int] = []
    raw_seats = data.get("seats")
    for raw in raw_seats if isinstance(raw_seats, list) else []:
        seat_id = _int(raw.get("id")) if isinstance(raw, dict) else _int(raw)
        if seat_id is not None:
            seats.append(seat_id)
    code = data.get("code")
    return Answer(
        code=code if isinstance(code, str) else "", seats=seats, hold=_int(data.get("hold"))
    )
