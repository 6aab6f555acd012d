"""The only write paths for seat state, by concern.

Each service runs in one transaction that locks what it changes (seats.locking), re-checks
every seat under the lock, and writes through seats.changes.commit_transitions. Services take
typed arguments and `now=` so tests control the clock. They raise seats.errors.BookingError
subclasses, which views turn into 4xx/503 answers; a service that raises has changed nothing.
"""

from ..parsing import MAX_SEATS_PER_REQUEST, clean_seat_ids
from .best_available import (
    BestAvailable,
    BestHeld,
    NotTogether,
    hold_best_available,
    hold_best_available_groups,
    parse_best_available,
)
from .bookings import book_seats, bookings_in_database, cancel_booking
from .holds import Toggled, expire_holds, hold_seats, release_hold, toggle_seat
from .seat_maps import SectionSpec, generate_seat_map, row_label
from .staff import block_seats, set_sale_state, unblock_seats

__all__ = [
    "MAX_SEATS_PER_REQUEST",
    "BestAvailable",
    "BestHeld",
    "NotTogether",
    "SectionSpec",
    "Toggled",
    "block_seats",
    "book_seats",
    "bookings_in_database",
    "cancel_booking",
    "clean_seat_ids",
    "expire_holds",
    "generate_seat_map",
    "hold_best_available",
    "hold_best_available_groups",
    "hold_seats",
    "parse_best_available",
    "release_hold",
    "row_label",
    "set_sale_state",
    "toggle_seat",
    "unblock_seats",
]
