"""Turns "no database connection free in time" into a 503 the client can retry."""

import logging

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


def _is_pool_timeout(exc: BaseException) -> bool:
    try:
        from psycopg_pool import PoolTimeout
    except ImportError:
        return False
    return isinstance(exc, PoolTimeout) or isinstance(exc.__cause__, PoolTimeout)


class DatabaseBusyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not (isinstance(exc, OperationalError) and _is_pool_timeout(exc)):
            return None
        logger.warning("No database connection free for %s %s", request.method, request.path)
        message = "The box office is very busy right now; please try again."
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"error": message, "code": "busy"}, status=503)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain")
        response["Retry-After"] = "1"
        return response
