"""How the site answers a database fault a retry can get past (the rule:
`seats.locking.is_transient_database_fault`): 503 "busy, try again" with Retry-After, never
500. DatabaseBusyMiddleware answers the ones a view raises; `server_error`, the handler500,
those raised anywhere else (a middleware saving the session, say)."""

import logging
import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from seats.locking import is_transient_database_fault

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"
BUSY_MESSAGE = "The box office is very busy right now; please try again in a moment."
BUSY_PAGE = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>Busy, try again</title>'
    f"<p>{BUSY_MESSAGE}</p></html>"
)


def busy_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: JSON `{"error", "code": "busy"}` under /api/, else a page."""
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": BUSY_MESSAGE, "code": "busy"}, status=503)
    else:
        response = HttpResponse(BUSY_PAGE, status=503)
    response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def busy_answer(request: HttpRequest, exc: BaseException) -> HttpResponse | None:
    """`busy_response`, logged as a warning, if `exc` is a transient database fault; else
    None."""
    if not is_transient_database_fault(exc):
        return None
    cause = exc.__cause__
    logger.warning(
        "Database busy or unreachable for %s %s: %s: %s (sqlstate %s)",
        request.method,
        request.path,
        type(cause or exc).__name__,
        cause or exc,
        getattr(cause, "sqlstate", None),
    )
    return busy_response(request)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: called while Django handles an exception that nothing else answered.
    Returns `busy_answer` for a transient database fault, else Django's own 500 page."""
    exc = sys.exception()
    answer = busy_answer(request, exc) if exc is not None else None
    return answer or defaults.server_error(request)
