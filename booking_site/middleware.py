"""Database faults a retry can fix answer 503 "busy, try again", never 500; and no 503
leaves without a Retry-After."""

import logging
import sqlite3

import psycopg
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.deprecation import MiddlewareMixin

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"
BUSY_MESSAGE = "The box office is very busy right now; please try again in a moment."
BUSY_PAGE = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>Busy, try again</title>'
    f"<p>{BUSY_MESSAGE}</p></html>"
)

# Server-reported faults that are over in a moment: admin_shutdown, crash_shutdown,
# cannot_connect_now (a restart), query_canceled (statement_timeout), lock_not_available
# (lock_timeout). Class 08 (connection exception) is matched by its prefix.
_BUSY_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57014", "55P03"})


def is_transient_database_fault(exc: BaseException) -> bool:
    """Whether `exc` is a database fault that the same request, retried in a moment, can
    get past: no pooled connection free in time, the connection refused or lost (the
    server restarting), a statement or lock time-out, SQLite's database-is-locked."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    cause = exc.__cause__
    if isinstance(cause, psycopg.Error):
        if cause.sqlstate is None:
            # Raised by the client, not the server: the connection could not be made, was
            # lost, or no pooled one came free (psycopg_pool.PoolTimeout).
            return isinstance(cause, psycopg.OperationalError)
        return cause.sqlstate.startswith("08") or cause.sqlstate in _BUSY_SQLSTATES
    if isinstance(cause, sqlite3.OperationalError):
        # The primary result code, without the extended bits (SQLITE_BUSY_SNAPSHOT, ...).
        return (cause.sqlite_errorcode & 0xFF) in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
    return False


def busy_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: JSON `{"error", "code": "busy"}` under /api/, else a page."""
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": BUSY_MESSAGE, "code": "busy"}, status=503)
    else:
        response = HttpResponse(BUSY_PAGE, status=503)
    response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


class DatabaseBusyMiddleware(MiddlewareMixin):
    """Answers a view's transient database fault (see `is_transient_database_fault`) with
    `busy_response`, and gives every 503 without one a Retry-After.

    Put it first in MIDDLEWARE so it sees the responses of all the others.
    """

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_transient_database_fault(exception):
            return None
        cause = exception.__cause__
        logger.warning(
            "Database busy or unreachable for %s %s: %s: %s (sqlstate %s)",
            request.method,
            request.path,
            type(cause or exception).__name__,
            cause or exception,
            getattr(cause, "sqlstate", None),
        )
        return busy_response(request)

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if response.status_code == 503 and not response.has_header("Retry-After"):
            response["Retry-After"] = RETRY_AFTER_SECONDS
        return response
