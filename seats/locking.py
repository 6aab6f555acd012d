"""Row locking for the write paths: short waits, primary-key order, clear errors.

Every write path takes its locks in one global order, so no two can deadlock:
customer row -> hold rows -> seat rows (by primary key) -> event row (the version bump).
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, transaction

from .errors import Busy
from .models import Hold, Seat

# lock_not_available (lock_timeout), deadlock_detected, serialization_failure,
# query_canceled (statement_timeout)
_RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001", "57014"}


def _is_lock_failure(exc: OperationalError) -> bool:
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True
    # SQLite: another writer kept the database past the busy timeout.
    return connection.vendor == "sqlite" and "locked" in str(exc).lower()


@contextmanager
def locked_transaction() -> Iterator[None]:
    """A transaction whose lock waits end after BOOKING_LOCK_TIMEOUT_MS.

    Raises Busy when a lock could not be had in time; the transaction is rolled back.
    """
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('lock_timeout', %s, true)",
                        [f"{settings.BOOKING_LOCK_TIMEOUT_MS}ms"],
                    )
            yield
    except OperationalError as exc:
        if _is_lock_failure(exc):
            raise Busy("These seats are busy right now; please try again.") from exc
        raise


def _require_transaction() -> None:
    if not connection.in_atomic_block:
        raise RuntimeError(
            "Row locks are only held inside a transaction; use locked_transaction()."
        )


def lock_customer(customer_id: int) -> None:
    """Serializes one customer's concurrent requests (their seat limit is checked after)."""
    _require_transaction()
    list(get_user_model().objects.select_for_update().filter(pk=customer_id).values_list("pk"))


def lock_holds(hold_ids: Iterable[int]) -> dict[int, Hold]:
    """Locks the given holds in primary-key order and returns them by id."""
    _require_transaction()
    holds = Hold.objects.select_for_update().filter(pk__in=set(hold_ids)).order_by("pk")
    return {hold.pk: hold for hold in holds}


def lock_seats(*, event_id: int, seat_ids: Iterable[int]) -> list[Seat]:
    """Locks the event's seats with these ids in primary-key order and returns them.

    Ids that are not seats of this event are simply absent from the result.
    """
    _require_transaction()
    return list(
        Seat.objects.select_for_update()
        .filter(event_id=event_id, pk__in=set(seat_ids))
        .order_by("pk")
    )


def lock_seats_of_holds(hold_ids: Iterable[int]) -> list[Seat]:
    """Locks the seats that still belong to these holds, in primary-key order."""
    _require_transaction()
    return list(Seat.objects.select_for_update().filter(hold_id__in=set(hold_ids)).order_by("pk"))
