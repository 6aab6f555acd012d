"""Row locking for the write paths: short waits, primary-key order, clear errors.

Every write path takes its locks in one global order, so no two can deadlock:
customer row -> hold rows -> seat rows (by primary key) -> event row (the version bump).

Also the one rule for which database faults a retry can get past
(`is_transient_database_fault`): `locked_transaction` turns them into Busy, and the web's
DatabaseBusyMiddleware and 500 handler answer the ones raised elsewhere with 503 "busy".
"""

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import Error, InterfaceError, OperationalError, connection, transaction

from .errors import Busy
from .models import Hold, Seat

# Server-reported faults that are over in a moment: lock_not_available (lock_timeout),
# query_canceled (statement_timeout), deadlock_detected, serialization_failure,
# admin_shutdown, crash_shutdown, cannot_connect_now (a restart). Class 08 (connection
# exception) is matched by its prefix.
_TRANSIENT_SQLSTATES = frozenset({"55P03", "57014", "40P01", "40001", "57P01", "57P02", "57P03"})


# What Busy says when a lock could not be had in time or the database faulted for a moment.
BUSY_MESSAGE = "These seats are busy right now; please try again."


def is_transient_database_fault(exc: BaseException) -> bool:
    """Whether `exc` is a database fault that the same request, retried in a moment, can
    get past: no pooled connection free in time, the connection refused or lost (the
    server restarting), a statement or lock time-out, a deadlock or serialization failure,
    SQLite's database-is-locked."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    cause = exc.__cause__
    if isinstance(cause, psycopg.Error):
        return is_transient_psycopg_fault(cause)
    if isinstance(cause, sqlite3.OperationalError):
        # The primary result code, without the extended bits (SQLITE_BUSY_SNAPSHOT, ...).
        return (cause.sqlite_errorcode & 0xFF) in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
    return False


def is_transient_psycopg_fault(error: psycopg.Error) -> bool:
    """`is_transient_database_fault` for psycopg's own error (not wrapped by Django)."""
    if error.sqlstate is None:
        # Raised by the client, not the server: the connection could not be made, was
        # lost, or no pooled one came free (psycopg_pool.PoolTimeout).
        return isinstance(error, psycopg.OperationalError)
    return error.sqlstate.startswith("08") or error.sqlstate in _TRANSIENT_SQLSTATES


def lock_timeout() -> str:
    """The lock_timeout of every write transaction, as PostgreSQL's set_config takes it."""
    return f"{settings.BOOKING_LOCK_TIMEOUT_MS}ms"


@contextmanager
def transient_faults_as_busy() -> Iterator[None]:
    """Raises Busy for a transient database fault (`is_transient_database_fault`) inside:
    a lock not had in time, a lost connection, a deadlock."""
    try:
        yield
    except Error as exc:
        if is_transient_database_fault(exc):
            raise Busy(BUSY_MESSAGE) from exc
        raise


@contextmanager
def locked_transaction() -> Iterator[None]:
    """A transaction whose lock waits end after BOOKING_LOCK_TIMEOUT_MS.

    Raises Busy, the transaction rolled back, when a lock could not be had in time or
    another transient database fault (`is_transient_database_fault`) ended it.
    """
    with transient_faults_as_busy(), transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout()])
        yield


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
