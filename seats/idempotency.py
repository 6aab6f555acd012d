"""Idempotent API writes: a request retried with the same `Idempotency-Key` header gets the
first answer again (with `Idempotent-Replayed: true`) and changes nothing.

The answer is stored in the database in the same transaction as the write it answers, so a
booking that committed always has its answer, even if the process died before sending it.
The key row is inserted first: a concurrent duplicate's insert waits on the unique
(customer, key) index until the first request commits, then reads its answer (or, if the
first rolled back, goes ahead itself). So the lock order of an idempotent write is
key row -> customer row -> hold rows -> seat rows -> event row.

That wait is a lock wait like any other: a duplicate waits at most BOOKING_LOCK_TIMEOUT_MS
(SQLite: its busy time-out) for the first to commit, then gets Busy (503, not kept), and its
retry gets the first answer.

On PostgreSQL a booking does all of that in its one statement (seatline_book_seats_once,
migration seats/0007, through `Claim`): the key row, the booking and its answer commit
together, and the booking's locks are never held across a round trip. A refusal there stores
nothing, and is answered and stored by `respond_once` as here.

Refusals (4xx) are stored like successes, so a retry gets the same refusal; "busy" (503) is
not, so a retry tries again. A retry of a finished request is answered by `stored_answer`
before anything else is done with it, or, for a booking on PostgreSQL, by the statement
itself; either way the rate limits do not count it (seats.api gives the count back). Keys are kept
IDEMPOTENCY_KEY_TTL_HOURS: an older key is as good as unused, and `prune_idempotency_keys`
deletes them.
"""

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from . import locking
from .errors import BookingError, InvalidRequest
from .models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# 1-255 visible ASCII characters: no spaces, no control characters.
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_PRUNE_BATCH = 10_000


class IdempotencyMismatch(BookingError):
    """The key was already used for a different request (another body, endpoint or event)."""

    status = 422
    code = "idempotency_mismatch"


@dataclass(frozen=True)
class Claim:
    """A write's Idempotency-Key, for a write that stores its answer itself, in the statement
    that writes (on PostgreSQL, a booking: seats.services.book_seats with `once`)."""

    customer_id: int
    key: str
    fingerprint: str

    def expired_before(self, now: datetime) -> datetime:
        """Keys created at or before this are as good as unused."""
        return now - ttl()


class Replayed(Exception):
    """The key was answered meanwhile (a concurrent copy of the request committed first):
    `response` is that answer, replayed; nothing was written."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__("answered before")
        self.response = response


def stored(*, fingerprint: str, stored_fingerprint: str, status: int, body: str) -> HttpResponse:
    """The answer stored under a key, replayed to a request with `fingerprint`. Raises
    IdempotencyMismatch if the key was stored for another request."""
    _check_fingerprint(stored_fingerprint, fingerprint)
    return _replay(status, body)


def answer(body: str, status: int) -> HttpResponse:
    """The first answer to a write whose JSON answer was stored as `body`: a retry is
    answered with the same bytes."""
    return HttpResponse(body, status=status, content_type="application/json")


def key_from(request: HttpRequest) -> str | None:
    """The request's Idempotency-Key, or None without one. Raises InvalidRequest when it is
    not 1-255 visible ASCII characters."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _VALID_KEY.fullmatch(key):
        raise InvalidRequest(f"{HEADER} must be 1 to 255 visible ASCII characters.")
    return key


def fingerprint(request: HttpRequest, body: bytes) -> str:
    """What must match for a retry to be the same request: method, path and body bytes."""
    digest = hashlib.sha256(f"{request.method} {request.path_info}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def ttl() -> timedelta:
    return timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def stored_answer(
    *, customer_id: int, key: str, fingerprint: str, now: datetime | None = None
) -> HttpResponse | None:
    """The stored answer to the customer's finished request with this key, marked as
    replayed, or None if there is none yet (unused, expired, or still running: leave those
    to `respond_once`). Raises IdempotencyMismatch if the key was used for another request.
    A plain read: no transaction, no lock."""
    record = (
        IdempotencyKey.objects.filter(customer_id=customer_id, key=key, status__isnull=False)
        .only("fingerprint", "status", "body", "created_at")
        .first()
    )
    if record is None or _expired(record, now or timezone.now()):
        return None
    assert record.status is not None  # filtered on
    return stored(
        fingerprint=fingerprint,
        stored_fingerprint=record.fingerprint,
        status=record.status,
        body=record.body,
    )


def respond_once(
    *,
    customer_id: int,
    key: str,
    fingerprint: str,
    respond: Callable[[], HttpResponse],
    now: datetime | None = None,
) -> HttpResponse:
    """Answers the request once per (customer, key): the first time by calling `respond`
    and storing its answer in the same transaction; after that with the stored answer,
    marked as replayed.

    `respond` writes and returns the answer to keep, refusals included; what it raises
    (Busy above all) rolls everything back and leaves the key unused, so a retry tries
    again. Raises IdempotencyMismatch if the key was used for another request, and Busy if
    a lock (the key's included) could not be had in time.
    """
    at = now or timezone.now()
    with locking.locked_transaction():
        record = _claim(customer_id=customer_id, key=key, fingerprint=fingerprint, now=at)
        _check_fingerprint(record.fingerprint, fingerprint)
        if record.status is not None:
            return _replay(record.status, record.body)
        response = respond()
        record.status = response.status_code
        record.body = response.content.decode()
        record.save(update_fields=["status", "body"])
    return response


def _claim(*, customer_id: int, key: str, fingerprint: str, now: datetime) -> IdempotencyKey:
    """Call inside the transaction. Inserts the key's row, or, if the customer already has
    it, locks and returns it (waiting for the transaction that inserted it to end). An
    expired row is taken over as if new."""
    while True:
        try:
            with transaction.atomic():  # a savepoint: a duplicate must not end the transaction
                return IdempotencyKey.objects.create(
                    customer_id=customer_id, key=key, fingerprint=fingerprint, created_at=now
                )
        except IntegrityError:
            pass
        record = (
            IdempotencyKey.objects.select_for_update()
            .filter(customer_id=customer_id, key=key)
            .first()
        )
        if record is None:
            continue  # pruned since the insert failed: insert it again
        if _expired(record, now):
            record.fingerprint, record.status, record.body = fingerprint, None, ""
            record.created_at = now
            record.save(update_fields=["fingerprint", "status", "body", "created_at"])
        return record


def _expired(record: IdempotencyKey, now: datetime) -> bool:
    return record.created_at <= now - ttl()


def _check_fingerprint(stored_fingerprint: str, fingerprint: str) -> None:
    if stored_fingerprint != fingerprint:
        raise IdempotencyMismatch(f"This {HEADER} was already used for another request.")


def _replay(status: int, body: str) -> HttpResponse:
    response = answer(body, status)
    response[REPLAYED_HEADER] = "true"
    return response


def prune_idempotency_keys(*, now: datetime | None = None) -> int:
    """Deletes the keys older than IDEMPOTENCY_KEY_TTL_HOURS, in batches (short
    transactions). Returns how many were deleted. The worker's loop (seats.sweeper) calls it
    when it starts and then hourly, after pruning the seat changes.
    """
    cutoff = (now or timezone.now()) - ttl()
    deleted = 0
    while True:
        batch = list(
            IdempotencyKey.objects.filter(created_at__lte=cutoff).values_list("pk", flat=True)[
                :_PRUNE_BATCH
            ]
        )
        if not batch:
            return deleted
        deleted += IdempotencyKey.objects.filter(pk__in=batch, created_at__lte=cutoff).delete()[0]
        if len(batch) < _PRUNE_BATCH:
            return deleted
