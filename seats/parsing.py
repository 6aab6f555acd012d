"""Parsing ids from requests: one rule for forms, query strings, JSON and WebSocket messages."""

from .errors import InvalidRequest

# Largest primary key (bigint); a larger id in an `IN (...)` query fails in the driver.
MAX_ID = 2**63 - 1
MAX_SEATS_PER_REQUEST = 100


def parse_id(raw: object, *, minimum: int = 1) -> int | None:
    """Returns `raw` as an int when it is one (JSON) or plain ASCII digits (forms, query
    strings) within [minimum, MAX_ID]; else None. Refuses bools, signs, spaces and non-ASCII
    digits, which int() would accept."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
            return None
        raw = int(raw)
    if isinstance(raw, int) and minimum <= raw <= MAX_ID:
        return raw
    return None


def clean_seat_ids(seat_ids: object, *, limit: int = MAX_SEATS_PER_REQUEST) -> list[int]:
    """Returns the ids as a list of ints. Raises InvalidRequest for anything else: not a
    list, not integers, duplicates, none, or more than `limit`."""
    if not isinstance(seat_ids, list | tuple):
        raise InvalidRequest('"seats" must be a list of seat ids.')
    if not seat_ids:
        raise InvalidRequest("Choose at least one seat.")
    if any(isinstance(s, str) or parse_id(s) is None for s in seat_ids):
        raise InvalidRequest("Seat ids must be positive integers.")
    if len(set(seat_ids)) != len(seat_ids):
        raise InvalidRequest("A seat is listed more than once.")
    if len(seat_ids) > limit:
        raise InvalidRequest(f"At most {limit} seats per request.")
    return list(seat_ids)
