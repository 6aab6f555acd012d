"""Venue layouts imported from a file: one seat per CSV line or JSON object, checked whole
before anything is written, then added to a draft event's map through seat_maps.add_seats.

CSV: a header line naming the columns `section,row,number,x,y,price,attributes` (any order;
`attributes` may be left out), then one seat per line. JSON: an array of objects with the same
keys (`attributes` a string or a list of strings). `attributes` lists SeatFeature codes
(`wheelchair`, `companion`, `restricted_view`) separated by spaces, semicolons or commas.
"""

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from ..errors import InvalidRequest
from ..models import Seat, SeatFeature, seat_code
from .seat_maps import MAX_COORDINATE, MAX_PRICE, MAX_SEATS_PER_EVENT, add_seats

COLUMNS = ("section", "row", "number", "x", "y", "price", "attributes")
REQUIRED = COLUMNS[:-1]
MAX_PROBLEMS_SHOWN = 50
_SEPARATORS = re.compile(r"[\s;,]+")
_FIELD_LIMITS = {
    "section": Seat._meta.get_field("section").max_length,
    "row": Seat._meta.get_field("row_label").max_length,
}

LayoutFormat = Literal["csv", "json"]


@dataclass(frozen=True)
class LayoutSeat:
    line: int  # where the seat is in the file, for messages
    section: str
    row: str
    number: int
    x: float
    y: float
    price: Decimal
    features: frozenset[str] = field(default_factory=frozenset)


class LayoutError(InvalidRequest):
    """A layout with mistakes: `problems` are (line number, what is wrong), line 0 for the
    file as a whole. Nothing was written."""

    def __init__(self, problems: Sequence[tuple[int, str]]) -> None:
        self.problems = list(problems)
        shown = [f"line {n}: {text}" if n else text for n, text in self.problems]
        more = len(shown) - MAX_PROBLEMS_SHOWN
        summary = "; ".join(shown[:MAX_PROBLEMS_SHOWN]) + (f"; and {more} more" if more > 0 else "")
        super().__init__(f"The layout has mistakes, nothing was imported: {summary}.")


def guess_format(filename: str, text: str) -> LayoutFormat:
    """JSON for a .json file or text starting with '[', else CSV."""
    if filename.lower().endswith(".json") or text.lstrip().startswith("["):
        return "json"
    return "csv"


def parse_layout(text: str, *, format: LayoutFormat) -> list[LayoutSeat]:
    """The seats of a layout file, in file order.

    Raises LayoutError naming every bad line (and seats given twice, or at the same place on
    the plan as another); nothing is returned unless every line is good.
    """
    problems: list[tuple[int, str]] = []
    records = _csv_records(text, problems) if format == "csv" else _json_records(text, problems)
    seats: list[LayoutSeat] = []
    for line, record in records:
        if len(seats) + len(problems) >= MAX_SEATS_PER_EVENT:
            problems.append((line, f"more than {MAX_SEATS_PER_EVENT:,} seats; stopped reading"))
            break
        try:
            seats.append(_seat(line, record))
        except ValueError as exc:
            problems.append((line, str(exc)))
    if not seats and not problems:
        problems.append((0, "no seats in the file"))
    problems += _clashes(seats)
    if problems:
        raise LayoutError(sorted(problems, key=lambda p: p[0]))
    return seats


def import_layout(*, event_id: int, seats: Sequence[LayoutSeat]) -> int:
    """Adds the seats to a draft event's map, all or none; returns how many.

    Raises LayoutError naming the lines whose seat is already on the map (checked again under
    the event's lock by add_seats), and add_seats' errors: NotFound, Conflict (not a draft),
    InvalidRequest (over MAX_SEATS_PER_EVENT).
    """
    taken = set(
        Seat.objects.filter(event_id=event_id, section__in={s.section for s in seats}).values_list(
            "section", "row_label", "number"
        )
    )
    clashes = [
        (s.line, f"{seat_code(s.section, s.row, s.number)} is already on the map")
        for s in seats
        if (s.section, s.row, s.number) in taken
    ]
    if clashes:
        raise LayoutError(clashes)
    return add_seats(
        event_id=event_id,
        seats=[
            Seat(
                event_id=event_id,
                section=s.section,
                row_label=s.row,
                number=s.number,
                x=s.x,
                y=s.y,
                price=s.price,
                wheelchair=SeatFeature.WHEELCHAIR in s.features,
                companion=SeatFeature.COMPANION in s.features,
                restricted_view=SeatFeature.RESTRICTED_VIEW in s.features,
            )
            for s in seats
        ],
    )


# --- reading ---------------------------------------------------------------------------------


def _csv_records(
    text: str, problems: list[tuple[int, str]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header: list[str] | None = None
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                missing = [c for c in REQUIRED if c not in header]
                unknown = [c for c in header if c not in COLUMNS]
                if missing or unknown or len(set(header)) != len(header):
                    problems.append(
                        (
                            reader.line_num,
                            f"the first line must name the columns {','.join(COLUMNS)}"
                            + (f" (missing {', '.join(missing)})" if missing else "")
                            + (f" (unknown {', '.join(unknown)})" if unknown else ""),
                        )
                    )
                    return
                continue
            if len(cells) != len(header):
                problems.append(
                    (reader.line_num, f"{len(cells)} values where the header has {len(header)}")
                )
                continue
            yield reader.line_num, dict(zip(header, cells, strict=True))
    except csv.Error as exc:
        problems.append((reader.line_num, f"not valid CSV ({exc})"))


def _json_records(
    text: str, problems: list[tuple[int, str]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The array's objects, each with the line it starts on (json.loads gives no positions,
    so the array is walked one element at a time)."""
    decoder = json.JSONDecoder(parse_float=str, parse_int=str)
    i = _skip_space(text, 1 if text.startswith("\ufeff") else 0)
    if not text.startswith("[", i):
        problems.append((1, "a JSON layout is an array of seats: [{...}, {...}]"))
        return
    i = _skip_space(text, i + 1)
    if text.startswith("]", i):
        return
    while True:
        line = text.count("\n", 0, i) + 1
        try:
            value, i = decoder.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError) as exc:
            lineno = getattr(exc, "lineno", line)
            problems.append((lineno, f"not valid JSON ({getattr(exc, 'msg', 'nested too deep')})"))
            return
        if isinstance(value, dict):
            yield line, value
        else:
            problems.append((line, "each seat is an object with section, row, number, ..."))
        i = _skip_space(text, i)
        if text.startswith(",", i):
            i = _skip_space(text, i + 1)
        elif text.startswith("]", i):
            if text[i + 1 :].strip():
                problems.append((text.count("\n", 0, i) + 1, "text after the end of the array"))
            return
        else:
            problems.append((text.count("\n", 0, i) + 1, "expected ',' or ']' after a seat"))
            return


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


# --- checking one seat -----------------------------------------------------------------------


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text")
    value = value.strip()
    limit = _FIELD_LIMITS[name]
    if limit is not None and len(value) > limit:
        raise ValueError(f"{name} {value[:limit]}… is longer than {limit} characters")
    return value


def _number(value: Any, name: str) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a number, not {str(value)[:20]!r}") from None
    if not math.isfinite(number) or abs(number) > MAX_COORDINATE:
        raise ValueError(f"{name} must be between -{MAX_COORDINATE:g} and {MAX_COORDINATE:g}")
    return number


def _seat(line: int, record: dict[str, Any]) -> LayoutSeat:
    unknown = sorted(set(record) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown field {', '.join(map(str, unknown))}")
    missing = [name for name in REQUIRED if record.get(name) in (None, "")]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing")
    section, row = _text(record, "section"), _text(record, "row")
    raw_number = str(record["number"]).strip()
    if not raw_number.isdecimal() or not 1 <= int(raw_number) <= 100_000:
        raise ValueError(f"number must be a whole number from 1, not {raw_number[:20]!r}")
    try:
        price = Decimal(str(record["price"]).strip())
    except InvalidOperation:
        raise ValueError(f"price must be an amount like 45.00, not {record['price']!r}") from None
    if not price.is_finite() or not 0 <= price <= MAX_PRICE or price != round(price, 2):
        raise ValueError("price must be 0 to 999999.99, in whole cents")
    return LayoutSeat(
        line=line,
        section=section,
        row=row,
        number=int(raw_number),
        x=_number(record["x"], "x"),
        y=_number(record["y"], "y"),
        price=price,
        features=_features(record.get("attributes")),
    )


def _features(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        words = [w for v in value for w in _SEPARATORS.split(v) if w]
    elif isinstance(value, str):
        words = [w for w in _SEPARATORS.split(value) if w]
    else:
        raise ValueError("attributes must be text such as 'wheelchair;companion'")
    codes = {w.lower().replace("-", "_") for w in words}
    unknown = sorted(codes - set(SeatFeature.values))
    if unknown:
        raise ValueError(
            f"unknown attribute {', '.join(unknown)} (known: {', '.join(SeatFeature.values)})"
        )
    return frozenset(codes)


def _clashes(seats: Sequence[LayoutSeat]) -> list[tuple[int, str]]:
    """Seats given twice, or drawn on the very same spot as another."""
    problems = []
    places: dict[tuple[str, str, int], int] = {}
    spots: dict[tuple[float, float], int] = {}
    for s in seats:
        place = (s.section, s.row, s.number)
        if place in places:
            problems.append(
                (s.line, f"{seat_code(*place)} is given twice (first on line {places[place]})")
            )
        else:
            places[place] = s.line
        spot = (round(s.x, 2), round(s.y, 2))
        if spot in spots:
            problems.append(
                (s.line, f"x={s.x:g}, y={s.y:g} is the same spot as line {spots[spot]}")
            )
        else:
            spots.setdefault(spot, s.line)
    return problems
