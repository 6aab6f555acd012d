"""Domain errors raised by seats.services. Each knows the HTTP status a view should answer."""

from collections.abc import Iterable


class BookingError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, seats: Iterable[int] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.seats = sorted(seats)

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.message, "code": self.code}
        if self.seats:
            body["seats"] = self.seats
        return body


class InvalidRequest(BookingError):
    status = 400
    code = "invalid"


class UnknownSeats(BookingError):
    status = 400
    code = "unknown_seats"


class NotFound(BookingError):
    status = 404
    code = "not_found"


class Forbidden(BookingError):
    status = 403
    code = "forbidden"


class SeatsUnavailable(BookingError):
    status = 409
    code = "seats_unavailable"


class SaleNotOpen(BookingError):
    status = 409
    code = "sale_not_open"


class LimitExceeded(BookingError):
    status = 409
    code = "limit_exceeded"


class Conflict(BookingError):
    status = 409
    code = "conflict"


class Busy(BookingError):
    """Another transaction held the seats for longer than the lock timeout."""

    status = 503
    code = "busy"
