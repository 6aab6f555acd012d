"""Database faults a retry can fix answer 503 "busy, try again", never 500; and no 503
leaves without a Retry-After."""

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

from .faults import RETRY_AFTER_SECONDS, busy_answer


class DatabaseBusyMiddleware(MiddlewareMixin):
    """Answers a view's transient database fault (see
    `seats.locking.is_transient_database_fault`) with `faults.busy_response`, and gives every
    503 without one a Retry-After. Faults raised outside the view reach `faults.server_error`
    (handler500) instead.

    Put it first in MIDDLEWARE so it sees the responses of all the others.
    """

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return busy_answer(request, exception)

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if response.status_code == 503 and not response.has_header("Retry-After"):
            response["Retry-After"] = RETRY_AFTER_SECONDS
        return response
